//! `splitguard lab demo`: a newcomer's first command. One pair lab (lb01, lb02,
//! gw), splitguard on both nodes with its arbiter and a webhook to gw, and the
//! story told live as gw sees it: steady state → lb01 fails → failover → lb01
//! back and preempts → VRRP firewalled on lb02 (S2: claim withheld, alert) →
//! VRID typo on lb02 (S3) → lb01's uplink cut with its link up (S4: lb01
//! releases, lb02 serves) → heal. Every wait is bounded; the lab goes on every
//! exit path. `quick` stops after S2 (the CI form).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::configs::{VIP, holds_vip, pair_lab, spawn_splitguard};
use super::gw::GwObserver;
use super::measure;
use super::netns::{Lab, LabError};
use super::pair::{SAMPLE_EVERY, STEADY_BOUND, splitguard_node_ready, start_gw_observer};
use super::process::LabProcess;
use super::report::Implementation;
use super::scenario::{self, Scenario, ScenarioError, apply_fault, heal_fault, sg_node_config};
use splitguard_node::status::state;

/// What `splitguard lab demo` was asked to do.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Stop after the S2 step (steady, failover, preempt, S2).
    pub quick: bool,
    /// The splitguard binary the nodes run (normally this very binary).
    pub splitguard: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Prerequisite(#[from] ScenarioError),
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Gw(#[from] super::gw::GwError),
    #[error("step {step:?} did not happen: {detail}")]
    Step { step: String, detail: String },
    #[error("interrupted; the lab was torn down")]
    Interrupted,
    #[error("start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// What the demo saw, for its last lines and for the test that runs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DemoSummary {
    pub took: Duration,
    /// gw's ARP requests answered by two MACs, over the whole demo.
    pub dual_samples: usize,
    pub samples: usize,
    /// (kind, status, node) of every alert gw received, in order.
    pub alerts: Vec<(String, String, String)>,
}

/// Bounds on what each step waits for (and [`STEADY_BOUND`]).
const MOVE_BOUND: Duration = Duration::from_secs(20);
const ALERT_BOUND: Duration = Duration::from_secs(8);
/// How long the demo waits for alerts spooled during a cut (retry backoff).
const SPOOL_BOUND: Duration = Duration::from_secs(10);
/// How long a fault that should change nothing is watched.
const HOLD: Duration = Duration::from_secs(7);

/// Plays the demo; `out` gets the timeline line by line.
pub fn run(opts: &DemoOptions, out: &mut dyn FnMut(&str)) -> Result<DemoSummary, DemoError> {
    scenario::check_prerequisites(false)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DemoError::Runtime)?;
    let lab = pair_lab("demo")?;
    let gw = start_gw_observer(&lab, Duration::from_secs(300))?;
    let names: BTreeMap<String, String> = ["lb01", "lb02"]
        .iter()
        .map(|h| Ok((lab.mac_of(h)?, (*h).to_owned())))
        .collect::<Result<_, LabError>>()?;
    let mut story = Story {
        lab: &lab,
        gw: &gw,
        rt: &rt,
        opts,
        start: Instant::now(),
        names,
        shown_owners: None,
        shown_hooks: 0,
        out,
        lb01: None,
        lb02: None,
    };
    let result = story.play();
    let summary = story.summary();
    if let Err(e) = &result {
        let tails = story.log_tails();
        (story.out)(&format!("\nthe demo stopped: {e}{tails}"));
    }
    drop(story);
    drop(gw);
    drop(lab);
    result.map(|()| summary)
}

struct Story<'a> {
    lab: &'a Lab,
    gw: &'a GwObserver,
    rt: &'a tokio::runtime::Runtime,
    opts: &'a DemoOptions,
    start: Instant,
    /// MAC → host name.
    names: BTreeMap<String, String>,
    shown_owners: Option<BTreeSet<String>>,
    shown_hooks: usize,
    out: &'a mut dyn FnMut(&str),
    lb01: Option<LabProcess>,
    lb02: Option<LabProcess>,
}

impl Story<'_> {
    fn play(&mut self) -> Result<(), DemoError> {
        self.say(&format!(
            "lab up: lb01 192.0.2.5 (priority 150), lb02 192.0.2.6 (priority 100), gw 192.0.2.254; \
             VIP {VIP}; VRRPv2, 1 s adverts; arbiter reference gw; alerts to a webhook on gw"
        ));
        self.step("1. steady state: splitguard starts on lb01 and lb02");
        self.lb01 = Some(self.start_node("lb01", None)?);
        self.lb02 = Some(self.start_node("lb02", None)?);
        self.until("steady state", STEADY_BOUND, |s| {
            s.owner_is("lb01")
                && splitguard_node_ready(s.rt, s.lab, "lb02", state::BACKUP, true).is_ok()
        })?;
        self.say("lb01 is master and holds the VIP; lb02 is backup and hears it");

        self.step("2. lb01 fails: its eth0 goes down");
        let t = Instant::now();
        apply_fault(self.lab, Scenario::S1)?;
        self.until("failover to lb02", MOVE_BOUND, |s| s.owner_is("lb02"))?;
        self.say(&format!(
            "failover: gw reaches the VIP on lb02 {:.1} s after the fault (early takeover: \
             lb02 claims once its arbiter confirms lb01 dead; keepalived waits out \
             Master_Down_Interval, 3.6 s at 1 s adverts)",
            t.elapsed().as_secs_f64()
        ));
        self.expect_alert("a failover alert", 0, "failover")?;

        self.step("3. lb01 comes back: it preempts (priority 150 > 100)");
        heal_fault(self.lab, Scenario::S1)?;
        self.until("lb01 preempts", MOVE_BOUND, |s| s.owner_is("lb01"))?;
        self.say("lb01 holds the VIP again");

        self.step("4. S2: a firewall on lb02 drops VRRP; lb02 hears no adverts");
        let since = self.gw.hooks().len();
        apply_fault(self.lab, Scenario::S2)?;
        self.hold("lb01", HOLD)?;
        self.expect_alert("a claim_withheld alert", since, "claim_withheld")?;
        self.say(
            "lb02's master went silent, but lb01 still answers ARP for the VIP: lb02 withheld \
             its claim (keepalived would take the VIP here: two owners)",
        );
        let since = self.gw.hooks().len();
        heal_fault(self.lab, Scenario::S2)?;
        self.say("firewall rule removed");
        self.expect_resolved("claim_withheld resolved", since, "claim_withheld")?;
        if self.opts.quick {
            return self.finish();
        }

        self.step("5. S3: lb02 is restarted with VRID 52 (a typo)");
        let since = self.gw.hooks().len();
        self.restart_lb02(Some(Scenario::S3))?;
        self.hold("lb01", HOLD)?;
        self.expect_alert("a vrid_mismatch alert", since, "vrid_mismatch")?;
        self.say(
            "lb02 hears adverts for its VIP under VRID 51, names the mismatch, and keeps off \
             the VIP because lb01 answers for it",
        );
        self.restart_lb02(None)?;
        self.until("lb02 back as backup", STEADY_BOUND, |s| {
            splitguard_node_ready(s.rt, s.lab, "lb02", state::BACKUP, true).is_ok()
        })?;
        self.say("lb02 restarted with VRID 51: backup again");

        self.step("6. S4: the switch cuts lb01 off; lb01's own link stays up");
        let t = Instant::now();
        apply_fault(self.lab, Scenario::S4)?;
        self.until("lb01 releases and lb02 serves", MOVE_BOUND, |s| {
            s.owner_is("lb02") && !holds_vip(s.lab, "lb01").unwrap_or(true)
        })?;
        self.say(&format!(
            "lb01 lost gw and lb02, released the VIP itself (self-demote); gw reaches it on \
             lb02; {:.1} s after the cut",
            t.elapsed().as_secs_f64()
        ));
        let since = self.gw.hooks().len();
        heal_fault(self.lab, Scenario::S4)?;
        self.say("the switch forwards lb01's frames again");
        self.until("lb01 takes the VIP back", MOVE_BOUND, |s| {
            s.owner_is("lb01")
        })?;
        self.say("lb01 holds the VIP again");
        // lb01's alerts were spooled while it was cut off; they arrive once its
        // retry gets through.
        if !self.alert_since(since, SPOOL_BOUND, "")? {
            self.say("lb01's spooled alerts are still waiting for their next retry");
        }
        self.finish()
    }

    fn finish(&mut self) -> Result<(), DemoError> {
        self.follow();
        let s = self.summary();
        self.step("done");
        self.say(&format!(
            "{:.0} s; gw asked {} times who holds the VIP and saw two owners {} times; \
             {} alerts arrived",
            s.took.as_secs_f64(),
            s.samples,
            s.dual_samples,
            s.alerts.len()
        ));
        Ok(())
    }

    fn summary(&self) -> DemoSummary {
        let samples = self.gw.samples();
        DemoSummary {
            took: self.start.elapsed(),
            dual_samples: samples.iter().filter(|s| s.macs.len() >= 2).count(),
            samples: samples.len(),
            alerts: self
                .gw
                .hooks()
                .iter()
                .map(|h| (h.kind().into(), h.status().into(), h.node().into()))
                .collect(),
        }
    }

    fn start_node(&self, node: &str, scenario: Option<Scenario>) -> Result<LabProcess, LabError> {
        let cfg = sg_node_config(
            self.lab,
            node,
            Implementation::Splitguard,
            scenario,
            self.gw.webhook_url(),
        );
        // Each config gets its own file name so a restart never races the old one.
        let tag = scenario.map_or("", Scenario::id);
        spawn_splitguard(
            self.lab,
            node,
            &self.opts.splitguard,
            "run",
            &format!("{node}{tag}"),
            &cfg,
        )
    }

    fn restart_lb02(&mut self, scenario: Option<Scenario>) -> Result<(), DemoError> {
        if let Some(mut old) = self.lb02.take() {
            old.stop(Duration::from_secs(5));
        }
        self.lb02 = Some(self.start_node("lb02", scenario)?);
        Ok(())
    }

    /// Prints what changed at gw since the last call: the owners, new alerts.
    fn follow(&mut self) {
        if let Some(sample) = self.gw.latest_since(self.start)
            && self.shown_owners.as_ref() != Some(&sample.macs)
        {
            let text = self.owners_text(&sample.macs);
            self.say(&format!("gw sees: {text}"));
            self.shown_owners = Some(sample.macs);
        }
        let hooks = self.gw.hooks();
        for h in hooks.iter().skip(self.shown_hooks) {
            let cause = h.body["cause"].as_str().unwrap_or("");
            // One notice for an incident that opened and closed while its
            // node could send nothing.
            let missed = if h.body["missed"] == serde_json::Value::Bool(true) {
                " (opened and closed before its page could be sent)"
            } else {
                ""
            };
            let line = format!(
                "alert at gw: {} {} {} from {}{missed}{}",
                h.status(),
                h.severity(),
                h.kind(),
                h.node(),
                if cause.is_empty() {
                    String::new()
                } else {
                    format!(" — {cause}")
                }
            );
            self.say(&line);
        }
        self.shown_hooks = hooks.len();
    }

    fn owners_text(&self, macs: &BTreeSet<String>) -> String {
        owners_text(&self.names, macs)
    }

    /// Whether gw's latest sample (within the last half second) is exactly `host`.
    fn owner_is(&self, host: &str) -> bool {
        let Some(s) = self.gw.latest_since(Instant::now() - SAMPLE_EVERY * 2) else {
            return false;
        };
        s.macs.len() == 1
            && s.macs
                .iter()
                .next()
                .and_then(|m| self.names.get(m))
                .is_some_and(|n| n == host)
    }

    /// Follows gw until `done` holds, at most `bound`.
    fn until(
        &mut self,
        what: &str,
        bound: Duration,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Result<(), DemoError> {
        let deadline = Instant::now() + bound;
        loop {
            self.follow();
            if done(self) {
                return Ok(());
            }
            if measure::interrupted() {
                return Err(DemoError::Interrupted);
            }
            if Instant::now() >= deadline {
                return Err(DemoError::Step {
                    step: what.into(),
                    detail: format!("not within {bound:?}"),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Follows gw for `d`.
    fn pause(&mut self, d: Duration) -> Result<(), DemoError> {
        let end = Instant::now() + d;
        self.until("a pause", d + Duration::from_secs(1), |_| {
            Instant::now() >= end
        })
    }

    /// Follows gw for `d` and fails if anyone but `owner` answered meanwhile.
    fn hold(&mut self, owner: &str, d: Duration) -> Result<(), DemoError> {
        let from = Instant::now();
        self.pause(d)?;
        let mac = self.lab.mac_of(owner)?;
        let others: BTreeSet<String> = self
            .gw
            .samples()
            .iter()
            .filter(|s| s.at >= from)
            .flat_map(|s| s.macs.iter().cloned())
            .filter(|m| *m != mac)
            .collect();
        if others.is_empty() {
            self.say(&format!(
                "{:.0} s on, gw still sees only {owner}",
                d.as_secs_f64()
            ));
            Ok(())
        } else {
            Err(DemoError::Step {
                step: format!("only {owner} answers"),
                detail: format!("gw also saw {}", self.owners_text(&others)),
            })
        }
    }

    /// Follows gw until a firing alert of `kind` (any kind when empty) is among
    /// the hooks received after the first `since`; false when none came within
    /// `bound`.
    fn alert_since(
        &mut self,
        since: usize,
        bound: Duration,
        kind: &str,
    ) -> Result<bool, DemoError> {
        let arrived = |s: &Self| {
            s.gw.hooks()
                .iter()
                .skip(since)
                .any(|h| h.status() == "firing" && (kind.is_empty() || h.kind() == kind))
        };
        match self.until("an alert", bound, arrived) {
            Ok(()) => Ok(true),
            Err(DemoError::Step { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Follows gw until a `resolved` alert of `kind` arrives after the first
    /// `since` hooks; the step fails without it.
    fn expect_resolved(&mut self, what: &str, since: usize, kind: &str) -> Result<(), DemoError> {
        self.until(what, ALERT_BOUND, |s| {
            s.gw.hooks()
                .iter()
                .skip(since)
                .any(|h| h.status() == "resolved" && h.kind() == kind)
        })
    }

    /// Like [`Story::alert_since`], but the step fails without the alert.
    fn expect_alert(&mut self, what: &str, since: usize, kind: &str) -> Result<(), DemoError> {
        if self.alert_since(since, ALERT_BOUND, kind)? {
            Ok(())
        } else {
            Err(DemoError::Step {
                step: what.into(),
                detail: format!("no alert reached gw within {ALERT_BOUND:?}"),
            })
        }
    }

    fn step(&mut self, title: &str) {
        (self.out)("");
        (self.out)(&format!("== {title}"));
    }

    fn say(&mut self, text: &str) {
        let t = self.start.elapsed().as_secs_f64();
        (self.out)(&format!("[{t:>5.1}s] {text}"));
    }

    fn log_tails(&self) -> String {
        [self.lb01.as_ref(), self.lb02.as_ref()]
            .into_iter()
            .flatten()
            .map(|p| p.log_tail(10))
            .collect()
    }
}

/// Who answered, by host name where known: "nobody …", "lb01 (mac) …", or
/// both spelled out as TWO OWNERS.
fn owners_text(names: &BTreeMap<String, String>, macs: &BTreeSet<String>) -> String {
    let named: Vec<String> = macs
        .iter()
        .map(|m| match names.get(m) {
            Some(n) => format!("{n} ({m})"),
            None => m.clone(),
        })
        .collect();
    match named.as_slice() {
        [] => "nobody answers for the VIP".into(),
        [one] => format!("{one} answers for the VIP"),
        _ => format!("{} — TWO OWNERS", named.join(" and ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_named_and_two_are_called_out() {
        let names: BTreeMap<String, String> = [("aa".to_string(), "lb01".to_string())].into();
        let set = |macs: &[&str]| macs.iter().map(|m| m.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(owners_text(&names, &set(&[])), "nobody answers for the VIP");
        assert_eq!(
            owners_text(&names, &set(&["aa"])),
            "lb01 (aa) answers for the VIP"
        );
        assert_eq!(
            owners_text(&names, &set(&["aa", "bb"])),
            "lb01 (aa) and bb — TWO OWNERS"
        );
    }
}
