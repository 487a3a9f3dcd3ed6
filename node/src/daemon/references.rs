//! Owns whether this node is isolated in `splitguard watch`, where no arbiter
//! runs: a node cut off from its network must never fence its peer (it would
//! be the wrong one to survive), so with `[[fence]]` configured `watch` probes
//! the `[arbiter] references` itself (or, when none, the default gateway of
//! the watched interfaces, as `run`'s arbiter does), by ICMP from this node's
//! own address on a watched VIP's interface, with `[arbiter] probe`'s
//! interval, timeout, rise and fall; results arrive as `Input::Probe` and are
//! debounced by `splitguard_arbiter::Reachability`. Isolated: fewer than
//! `quorum` references proven reachable (still unproven ones count as not
//! reachable), and always when there is no reference at all: nothing then
//! says this node is not cut off, so it fails closed.

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::{Context, bail};
use splitguard_arbiter::Reachability;
use splitguard_arbiter::probe::ProbeResult;
use splitguard_vrrp::wire::Family;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::probers::{Home, Homes, Probers};
use crate::config::Config;
use crate::config::probe_plan::{self, ProbeRoute, Sites};
use crate::net::netlink::Netlink;
use crate::status::{self, ArbiterStatus};
use crate::watch::VipSite;

pub(super) struct References {
    reach: Reachability,
    quorum: usize,
    published: Option<ArbiterStatus>,
}

impl References {
    /// Resolves the references, opens the probers and starts the probe
    /// loops into `probes`. `sites`: the watched VIPs' sites, in the order
    /// of `cfg.watches`.
    pub async fn start(
        cfg: &Config,
        nl: &Netlink,
        sites: &[VipSite],
        probes: mpsc::Sender<ProbeResult>,
    ) -> anyhow::Result<References> {
        let sites_of = Sites::Watches(&cfg.watches);
        let mut references = cfg.arbiter.references.clone();
        let mut routes: Vec<ProbeRoute> = Vec::new();
        for &r in &references {
            // Validation checked the same rule for a config without
            // instances; a config with both checked its instances instead.
            let route = probe_plan::route_from(r, sites_of, None)
                .map_err(|why| anyhow::anyhow!("arbiter.references: {why}"))?;
            routes.push(route);
        }
        if references.is_empty() {
            let mut asked = BTreeSet::new();
            for (w, s) in cfg.watches.iter().zip(sites) {
                let family = Family::of(w.vip);
                if !asked.insert((s.ifindex, family)) {
                    continue;
                }
                match nl.default_gateway(s.ifindex, family).await {
                    Ok(Some(gw)) if !references.contains(&gw) => {
                        // The gateway of a watched VIP's interface and
                        // family: echoes leave from there.
                        let route = probe_plan::route_from(gw, sites_of, Some(&w.interface))
                            .map_err(|why| anyhow::anyhow!("default gateway {gw}: {why}"))?;
                        references.push(gw);
                        routes.push(route);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        warn!(interface = %w.interface, error = %e, "default gateway lookup failed")
                    }
                }
            }
            match references.as_slice() {
                [] => error!(
                    "fencing: no [arbiter] references and no default gateway on the watched interfaces: this node cannot tell it is not isolated, so it will never fence"
                ),
                refs => {
                    info!(references = ?refs, "fencing: no [arbiter] references configured, probing the default gateway")
                }
            }
        }
        let p = &cfg.arbiter.probe;
        let reach = Reachability::new(references.iter().copied(), p.rise, p.fall)
            .map_err(|e| anyhow::anyhow!("arbiter.probe: {e}"))?;
        let quorum = cfg.arbiter.quorum as usize;
        if !references.is_empty() && quorum > reach.len() {
            bail!(
                "arbiter.quorum {quorum} exceeds the {} reference(s) found; this node would always count as isolated",
                reach.len()
            );
        }
        let homes = Homes::new(
            nl.clone(),
            cfg.watches
                .iter()
                .zip(sites)
                .map(|(w, s)| Home {
                    interface: w.interface.clone(),
                    ifindex: s.ifindex,
                    primary: s.source,
                })
                .collect(),
            sites.iter().map(|s| s.vip).collect(),
        );
        let needs: BTreeSet<_> = routes
            .iter()
            .map(|r| (r.interface.clone(), r.source))
            .collect();
        let probers = Probers::open(&needs, &homes)
            .await
            .context("fencing's reference probes")?;
        probers.spawn_loops(&routes, p.interval, p.timeout, &probes)?;
        Ok(References {
            reach,
            quorum,
            published: None,
        })
    }

    /// A probe result for a reference.
    pub fn on_probe(&mut self, now: Instant, p: &ProbeResult) {
        match self.reach.handle_probe(now, p.target, p.ok) {
            Ok(Some(state)) => info!(
                reference = %p.target,
                ?state,
                isolated = self.isolated(),
                "reference reachability changed"
            ),
            Ok(None) => {}
            Err(e) => warn!(target = %p.target, error = %e, "probe result not taken"),
        }
    }

    /// Fencing must wait: fewer than `quorum` references proven reachable.
    pub fn isolated(&self) -> bool {
        self.reach.reachable() < self.quorum
    }

    /// The `arbiter` status block (references and isolation; no peers, no
    /// gate) when it changed since the last call.
    pub fn status_if_changed(&mut self) -> Option<ArbiterStatus> {
        let st = ArbiterStatus {
            isolated: self.isolated(),
            references: self
                .reach
                .targets()
                .map(|(ip, s)| status::Reachability {
                    ip,
                    reachable: s.is_reachable(),
                })
                .collect(),
            peers: Vec::new(),
            quorum: Some(self.quorum),
        };
        if self.published.as_ref() == Some(&st) {
            return None;
        }
        self.published = Some(st.clone());
        Some(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use std::time::Duration;

    fn refs(list: &[&str], quorum: usize) -> References {
        References {
            reach: Reachability::new(list.iter().map(|s| s.parse::<IpAddr>().unwrap()), 2, 2)
                .unwrap(),
            quorum,
            published: None,
        }
    }

    fn probe(target: &str, ok: bool, at: Instant) -> ProbeResult {
        ProbeResult {
            target: target.parse().unwrap(),
            ok,
            rtt: None,
            at,
        }
    }

    #[test]
    fn isolated_until_the_quorum_is_proven_and_again_when_it_falls() {
        let t0 = Instant::now();
        let mut r = refs(&["192.0.2.254", "192.0.2.253"], 1);
        assert!(r.isolated(), "nothing proven at the start");
        r.on_probe(t0, &probe("192.0.2.254", true, t0));
        assert!(r.isolated(), "one success is below rise");
        r.on_probe(t0, &probe("192.0.2.254", true, t0));
        assert!(!r.isolated());
        let st = r.status_if_changed().expect("first");
        assert!(!st.isolated && st.quorum == Some(1) && st.references[0].reachable);
        assert!(r.status_if_changed().is_none(), "unchanged");
        let t1 = t0 + Duration::from_secs(2);
        r.on_probe(t1, &probe("192.0.2.254", false, t1));
        r.on_probe(t1, &probe("192.0.2.254", false, t1));
        assert!(r.isolated());
        assert!(r.status_if_changed().is_some_and(|s| s.isolated));
        // A result for a target that is no reference changes nothing.
        r.on_probe(t1, &probe("192.0.2.9", true, t1));
        assert!(r.isolated());
    }

    #[test]
    fn no_reference_at_all_fails_closed() {
        assert!(refs(&[], 1).isolated());
    }
}
