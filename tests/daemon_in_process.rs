//! The daemon as a library: `splitguard_node::daemon::run_until` on a
//! current-thread runtime, on a thread inside lb01's namespace (no process
//! spawned). Alone on the segment it becomes master and holds the VIP, `status`
//! over its control socket says so, and its stop handle steps it down like
//! SIGTERM would: the VIP is released and `run_until` returns Ok.
//! Needs root; fails without it.

mod common;

use common::*;
use splitguard_lab::wait_for;
use splitguard_node::daemon::{Options, run_until};

/// `splitguard status --json` in lb01; `None` until the socket answers.
fn status(lab: &splitguard_lab::Lab) -> Option<serde_json::Value> {
    let sock = lab.dir().join("lb01.sock");
    let out = lab
        .run(
            "lb01",
            &[
                env!("CARGO_BIN_EXE_splitguard"),
                "status",
                "--json",
                "--socket",
                sock.to_str()?,
            ],
        )
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn the_daemon_library_runs_in_process_and_stops_on_its_handle() {
    let lab = pair_lab("inproc");
    let text = sg_config(&lab, "lb01", 150, 3, "100ms", "");
    let cfg = splitguard_node::config::parse(&text, "lb01.toml").expect("config parses");
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let daemon = lab
        .spawn_within("lb01", move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(run_until(cfg, Options::default(), Some(stopped)))
        })
        .expect("a thread in lb01");

    let status = wait_for(BOUND, || {
        let s = status(&lab)?;
        (s["instances"][0]["state"] == "MASTER").then_some(s)
    });
    let status = status.unwrap_or_else(|| {
        panic!(
            "lb01 never became master; daemon thread finished: {}",
            daemon.is_finished()
        )
    });
    assert_eq!(status["node"], "lb01");
    assert_eq!(status["instances"][0]["vips_held"], true);
    assert!(holds(&lab, "lb01"), "master holds the VIP on eth0");

    stop.send(()).expect("the daemon is still running");
    let result = daemon
        .join()
        .expect("daemon thread did not panic")
        .expect("entered lb01's namespace");
    assert!(result.is_ok(), "run_until returns Ok on stop: {result:?}");
    assert!(!holds(&lab, "lb01"), "a stopped daemon keeps no VIP");
}
