//! The lab harness itself: hosts reach each other through the bridge, a pulled
//! cable cuts them off, and dropping the lab leaves no namespace behind.
//! Needs root; fails (never skips) without it.

use splitguard_lab::Lab;
use std::net::Ipv4Addr;
use std::process::Command;

fn netns_list() -> String {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn hosts_talk_through_the_bridge_and_teardown_is_complete() {
    let lab = Lab::builder("labnetns")
        .host("lb01", Ipv4Addr::new(192, 0, 2, 5))
        .host("lb02", Ipv4Addr::new(192, 0, 2, 6))
        .build()
        .expect("lab builds (run as root)");
    let id = lab.id().to_string();
    assert!(netns_list().contains(&format!("{id}-lb01")));

    // One bounded ping each way.
    lab.run("lb01", &["ping", "-c", "1", "-W", "5", "192.0.2.6"])
        .expect("lb01 reaches lb02");
    lab.run("lb02", &["ping", "-c", "1", "-W", "5", "192.0.2.5"])
        .expect("lb02 reaches lb01");

    lab.set_bridge_port("lb02", false).expect("port down");
    assert!(
        lab.run("lb01", &["ping", "-c", "1", "-W", "1", "192.0.2.6"])
            .is_err(),
        "a pulled cable must cut lb02 off"
    );

    // A process left running inside a host must not keep the lab alive.
    let mut sleeper = lab
        .command("lb01", "sleep")
        .expect("host exists")
        .arg("600")
        .spawn()
        .expect("sleep starts");
    drop(lab);
    // Teardown killed it; reap it so no zombie outlives the test.
    let status = sleeper.wait().expect("sleep is reaped");
    assert!(!status.success(), "sleep was killed, not left to finish");
    assert!(
        !netns_list().contains(&id),
        "namespaces left behind: {}",
        netns_list()
    );
}
