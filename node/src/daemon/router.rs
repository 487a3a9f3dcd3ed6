//! One configured VRRP instance bound to its interface: the state machine plus what
//! the daemon needs to act for it (the advert it sends, what it accepts, its VIPs,
//! its GARP schedule). Pure apart from the clock values handed in.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::config;
use crate::net::pace::Pacer;
use crate::status::{self, InstanceStatus};
use splitguard_vrrp::gate::ClaimGate;
use splitguard_vrrp::instance::State;
use splitguard_vrrp::instance::{Instance, InstanceConfig, TrackerConfig};
use splitguard_vrrp::wire::{
    self, AdvertRepr, Auth, ChecksumMode, Endpoints, Expect, Family, VirtualAddrs,
};
use splitguard_watchdog::core::classify::ExpectedAdvert;

/// Tracker name under which an interface's link state reaches the state machine.
pub fn interface_tracker(name: &str) -> String {
    format!("interface:{name}")
}

/// Tracker name of a `[[track_script]]`.
pub fn script_tracker(name: &str) -> String {
    format!("script:{name}")
}

/// When the next gratuitous ARPs go out while master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GarpSchedule {
    pub due: Instant,
    /// GARPs left in the current burst (the refresh is a burst of one).
    pub left: u32,
}

pub struct Router {
    pub cfg: config::Instance,
    pub fsm: Instance,
    pub ifindex: u32,
    pub mac: [u8; 6],
    /// Where adverts come from: the primary IPv4 address, or the IPv6 link-local.
    pub primary: IpAddr,
    pub vip_addrs: Vec<IpAddr>,
    auth: Auth,
    addrs: VirtualAddrs,
    checksum_mode: ChecksumMode,
    pub garp: Option<GarpSchedule>,
    /// Wall-clock time (unix ms) and cause of the last state change, for status.
    pub since_ms: Option<u64>,
    pub cause: Option<String>,
    /// For `/metrics`.
    pub counters: crate::metrics::InstanceCounters,
    /// The status line as last published, with the gate it shows (its reason
    /// is only put in words when the gate moves).
    status_cache: Option<(InstanceStatus, ClaimGate)>,
}

impl Router {
    pub fn new(
        cfg: config::Instance,
        scripts: &[config::TrackScript],
        ifindex: u32,
        mac: [u8; 6],
        primary: IpAddr,
    ) -> anyhow::Result<Router> {
        let vip_addrs: Vec<IpAddr> = cfg.vips.iter().map(|v| v.addr).collect();
        let addrs = VirtualAddrs::from_ips(&vip_addrs).ok_or_else(|| {
            anyhow::anyhow!("instance {}: VIPs must be one address family", cfg.name)
        })?;
        let auth = match &cfg.auth_pass {
            Some(pass) => Auth::Pass(
                wire::pass_key(pass.expose().as_bytes())
                    .map_err(|e| anyhow::anyhow!("instance {}: auth_pass: {e}", cfg.name))?,
            ),
            None => Auth::None,
        };
        // The instance's own interface always counts: keepalived puts an instance
        // whose interface lost its link in FAULT, which releases the VIPs.
        let mut trackers = vec![TrackerConfig {
            name: interface_tracker(&cfg.interface),
            weight: 0,
        }];
        for name in &cfg.track_interfaces {
            if *name != cfg.interface {
                trackers.push(TrackerConfig {
                    name: interface_tracker(name),
                    weight: 0,
                });
            }
        }
        for name in &cfg.track_scripts {
            let weight = scripts
                .iter()
                .find(|s| &s.name == name)
                .map(|s| i32::from(s.weight))
                .ok_or_else(|| anyhow::anyhow!("track_script {name} is not defined"))?;
            trackers.push(TrackerConfig {
                name: script_tracker(name),
                weight,
            });
        }
        let fsm_cfg = InstanceConfig {
            version: cfg.version,
            vrid: cfg.vrid,
            priority: cfg.priority,
            advert_interval: cfg.advert_interval,
            preempt: cfg.preempt,
            preempt_delay: cfg.preempt_delay,
            primary_ip: primary,
            trackers,
        };
        let fsm = Instance::try_new(fsm_cfg)
            .map_err(|e| anyhow::anyhow!("instance {}: {e}", cfg.name))?;
        let checksum_mode = if cfg.v3_checksum_as_v2 {
            ChecksumMode::NoPseudoHeader
        } else {
            ChecksumMode::PseudoHeader
        };
        Ok(Router {
            cfg,
            fsm,
            ifindex,
            mac,
            primary,
            vip_addrs,
            auth,
            addrs,
            checksum_mode,
            garp: None,
            since_ms: None,
            cause: None,
            counters: Default::default(),
            status_cache: None,
        })
    }

    pub fn is_unicast(&self) -> bool {
        !self.cfg.unicast_peers.is_empty()
    }

    /// The address family the instance speaks (its VIPs').
    pub fn family(&self) -> Family {
        self.addrs.family()
    }

    /// Where adverts go: each unicast peer, or the VRRP group.
    pub fn destinations(&self) -> Vec<IpAddr> {
        if self.is_unicast() {
            self.cfg.unicast_peers.clone()
        } else {
            match self.family() {
                Family::Ipv4 => vec![IpAddr::V4(wire::MULTICAST_V4)],
                Family::Ipv6 => vec![IpAddr::V6(wire::MULTICAST_V6)],
            }
        }
    }

    /// The bytes of one advert at `priority` to `dst`.
    pub fn advert(&self, priority: u8, dst: IpAddr) -> anyhow::Result<Vec<u8>> {
        let repr = AdvertRepr {
            version: self.cfg.version,
            vrid: self.cfg.vrid,
            priority,
            adver_int: AdvertRepr::interval_field(self.cfg.version, self.cfg.advert_interval)?,
            auth: self.auth,
            addrs: self.addrs.clone(),
        };
        // Config validation keeps peers in the VIPs' family; say so if not.
        let endpoints = Endpoints::new(self.primary, dst)
            .ok_or_else(|| anyhow::anyhow!("advert from {} cannot go to {dst}", self.primary))?;
        Ok(wire::build_advert(&repr, &endpoints, self.checksum_mode)?)
    }

    /// What the watcher compares the adverts it sees for our VIPs with.
    pub fn expected_advert(&self) -> ExpectedAdvert {
        ExpectedAdvert {
            vrid: self.cfg.vrid,
            version: self.cfg.version.number(),
            interval: self.cfg.advert_interval,
            auth: crate::watch::capture::auth_seen(self.auth),
        }
    }

    /// What an advert must satisfy to reach the state machine.
    pub fn expect(&self) -> Expect<'_> {
        Expect {
            version: self.cfg.version,
            vrid: self.cfg.vrid,
            auth: match self.auth {
                Auth::Pass(key) => Some(key),
                _ => None,
            },
            interval: self.cfg.advert_interval,
            vips: &self.vip_addrs,
            checksum_mode: self.checksum_mode,
            // keepalived checks TTL 255 only for multicast: unicast adverts may cross
            // routers (RFC 3768 §7.1 assumes one segment).
            check_ttl: !self.is_unicast(),
        }
    }

    /// Starts a GARP burst (on becoming master).
    pub fn start_garp(&mut self, now: Instant) {
        if self.cfg.garp_repeat > 0 {
            self.garp = Some(GarpSchedule {
                due: now,
                left: self.cfg.garp_repeat,
            });
        }
    }

    /// Accounts for one GARP round sent at `now` and schedules the next in a slot
    /// of the interface's `pacer`: the rest of the burst, then the periodic
    /// refresh (switches keep stale MACs after a heal: acassen/keepalived#166).
    pub fn garp_sent(&mut self, now: Instant, pacer: &mut Pacer) {
        let Some(g) = self.garp else { return };
        let left = g.left.saturating_sub(1);
        self.garp = if left > 0 {
            Some(GarpSchedule {
                due: pacer.slot(now + self.cfg.garp_interval),
                left,
            })
        } else if self.cfg.garp_refresh > Duration::ZERO {
            Some(GarpSchedule {
                due: pacer.slot(now + self.cfg.garp_refresh),
                left: 1,
            })
        } else {
            None
        };
    }

    pub fn ipv4_vips(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.vip_addrs.iter().filter_map(|a| match a {
            IpAddr::V4(v) => Some(*v),
            IpAddr::V6(_) => None,
        })
    }

    pub fn ipv6_vips(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.vip_addrs.iter().filter_map(|a| match a {
            IpAddr::V6(v) => Some(*v),
            IpAddr::V4(_) => None,
        })
    }

    /// This instance as `status` reports it.
    pub fn status(&self) -> InstanceStatus {
        InstanceStatus {
            name: self.cfg.name.clone(),
            vrid: self.cfg.vrid,
            state: self.state_word().to_string(),
            priority: self.cfg.priority,
            effective_priority: self.fsm.effective_priority(),
            vips: self
                .cfg
                .vips
                .iter()
                .map(|v| format!("{}/{}", v.addr, v.prefix_len))
                .collect(),
            vips_held: self.fsm.vips_held(),
            master: self.master_addr(),
            interface: self.cfg.interface.clone(),
            version: self.cfg.version.number(),
            claim_gate: match self.fsm.claim_gate() {
                ClaimGate::Open => None,
                ClaimGate::Closed(reason) => Some(reason.to_string()),
            },
            since_ms: self.since_ms,
            cause: self.cause.clone(),
        }
    }

    /// The status line when something it shows moved since the last call, else
    /// None. An advert moves the counters, not the line: a backup hearing
    /// hundreds of masters compares a few fields per advert and formats nothing.
    pub fn status_if_changed(&mut self) -> Option<InstanceStatus> {
        if let Some((line, gate)) = &self.status_cache
            && line.state == self.state_word()
            && line.effective_priority == self.fsm.effective_priority()
            && line.vips_held == self.fsm.vips_held()
            && line.master == self.master_addr()
            && gate == self.fsm.claim_gate()
            && line.since_ms == self.since_ms
            && line.cause == self.cause
        {
            return None;
        }
        let line = self.status();
        self.status_cache = Some((line.clone(), self.fsm.claim_gate().clone()));
        Some(line)
    }

    fn state_word(&self) -> &'static str {
        if self.fsm.is_stopped() {
            status::state::STOP
        } else {
            self.fsm.state().as_str()
        }
    }

    /// The master as last heard; ours while we are master.
    fn master_addr(&self) -> Option<IpAddr> {
        match self.fsm.state() {
            State::Master => Some(self.primary),
            _ => self.fsm.master(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitguard_vrrp::gate::WithholdReason;

    fn router() -> Router {
        let cfg = crate::config::parse(
            "node = \"lb01\"\n[[instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\n\
             vrid = 51\npriority = 150\nadvert_interval = \"1s\"\nvips = [\"192.0.2.3/24\"]\n",
            "test",
        )
        .expect("config");
        let inst = cfg.instances[0].clone();
        Router::new(
            inst,
            &[],
            2,
            [2, 0, 0, 0, 0, 1],
            IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 5)),
        )
        .expect("router")
    }

    #[test]
    fn the_status_line_is_handed_out_again_only_when_something_it_shows_moved() {
        let mut r = router();
        let first = r.status_if_changed().expect("the first call has the line");
        assert_eq!(first, r.status());
        assert_eq!(r.status_if_changed(), None);
        // Counters are not on the line.
        r.counters.adverts_received += 1;
        assert_eq!(r.status_if_changed(), None);
        let now = Instant::now();
        r.fsm.set_claim_gate(
            now,
            ClaimGate::Closed(WithholdReason::Isolated {
                reachable: 0,
                quorum: 1,
            }),
        );
        let gated = r.status_if_changed().expect("the gate moved");
        assert!(gated.claim_gate.is_some(), "{gated:?}");
        assert_eq!(gated, r.status());
        assert_eq!(r.status_if_changed(), None);
        r.cause = Some("master silent".into());
        assert_eq!(
            r.status_if_changed().and_then(|l| l.cause),
            Some("master silent".to_string())
        );
        r.since_ms = Some(1);
        assert!(r.status_if_changed().is_some());
        r.fsm.set_demotion(now, 50);
        let demoted = r.status_if_changed().expect("the priority moved");
        assert_eq!(demoted, r.status());
    }
}
