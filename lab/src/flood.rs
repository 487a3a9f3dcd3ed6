//! Owns the lab's hostile host (issue 19): a flood of malformed and hostile
//! VRRP frames at the pair's segment, sent from a lab namespace of its own,
//! bounded in count and in time. Each frame is built to fail one check of
//! RFC 3768/5798 §7.1 (or to pass them all but the TTL), for the pair's own
//! VRID and VIP, so that every one reaches the daemons' receive path.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use socket2::{Domain, Protocol, Socket, Type};
use splitguard_vrrp::Version;
use splitguard_vrrp::wire::{
    self, AdvertRepr, Auth, ChecksumMode, Endpoints, Family, Packet, VirtualAddrs, build_advert,
    pass_key,
};

use super::netns::{Lab, LabError};

/// VRRP's multicast group and IP protocol number.
const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
const PROTOCOL: i32 = 112;
/// Frames sent per pacing step: the sender sleeps between batches, so a
/// 10,000 a second flood is 100 batches a second, not 10,000 wakeups.
const BATCH: u64 = 100;
/// The longest flood the lab sends, whatever is asked.
pub const MAX_DURATION: Duration = Duration::from_secs(120);
/// The highest rate the lab sends, whatever is asked.
pub const MAX_RATE: u64 = 50_000;

/// Why a flood could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum FloodError {
    #[error("flood frames: {0}")]
    Frames(#[from] wire::Error),
    #[error("flood socket: {0}")]
    Socket(#[from] std::io::Error),
    #[error(transparent)]
    Lab(#[from] LabError),
}

/// What is wrong with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Garbage {
    /// Cut after 6 bytes.
    Truncated,
    /// One checksum byte flipped.
    BadChecksum,
    /// Version 4 (checksum valid).
    WrongVersion,
    /// Type 2 (checksum valid).
    WrongType,
    /// PASS with another password (v2 only: v3 has no authentication).
    WrongPassword,
    /// Auth type 9 (v2 only).
    UnknownAuthType,
    /// The address count says one more than the list holds.
    CountMismatch,
    /// 32 bytes of noise.
    RandomBytes,
    /// A well-formed advert sent with TTL 64: from beyond a router, or forged.
    Ttl64,
}

impl Garbage {
    pub const ALL: [Garbage; 9] = [
        Garbage::Truncated,
        Garbage::BadChecksum,
        Garbage::WrongVersion,
        Garbage::WrongType,
        Garbage::WrongPassword,
        Garbage::UnknownAuthType,
        Garbage::CountMismatch,
        Garbage::RandomBytes,
        Garbage::Ttl64,
    ];

    /// The reason a daemon of `version` counts this frame under in
    /// `splitguard_adverts_rejected_total{reason}`, when the frame names its
    /// VRID at all (random bytes do not, and go to no instance).
    pub fn reason(self) -> Option<&'static str> {
        Some(match self {
            Garbage::Truncated => "truncated",
            Garbage::BadChecksum => "checksum",
            Garbage::WrongVersion => "version",
            Garbage::WrongType => "type",
            Garbage::WrongPassword => "password",
            Garbage::UnknownAuthType => "auth_type",
            Garbage::CountMismatch => "length",
            Garbage::RandomBytes => return None,
            Garbage::Ttl64 => "ttl",
        })
    }

    /// Whether a flood at `version` sends this kind.
    pub fn applies_to(self, version: Version) -> bool {
        match self {
            Garbage::WrongPassword | Garbage::UnknownAuthType => version == Version::V2,
            _ => true,
        }
    }
}

/// The flood: at `rate` frames a second for `duration`, from `src` (the
/// flooding host's own address) at VRRP's group, every kind of [`Garbage`]
/// in turn that applies to `version`, naming `vrid` and `vip`: at v2 with
/// PASS `password` (ignored at v3) and `adver_int` in the version's units
/// (v2 seconds, v3 centiseconds), so that only the planted fault differs from
/// what the pair sends.
#[derive(Debug, Clone)]
pub struct FloodSpec {
    pub src: Ipv4Addr,
    pub version: Version,
    pub vrid: u8,
    pub vip: Ipv4Addr,
    pub password: String,
    pub adver_int: u16,
    pub rate: u64,
    pub duration: Duration,
}

/// What was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FloodReport {
    pub sent: u64,
    /// Sends the kernel refused (a full queue under load): counted, not retried.
    pub refused: u64,
    pub elapsed: Duration,
    /// Frames sent, by kind.
    pub by_kind: Vec<(Garbage, u64)>,
}

impl FloodReport {
    /// Frames sent that a daemon counts under `reason`.
    pub fn sent_for(&self, reason: &str) -> u64 {
        self.by_kind
            .iter()
            .filter(|(g, _)| g.reason() == Some(reason))
            .map(|(_, n)| n)
            .sum()
    }
}

/// One frame of each kind that applies to the spec's version: the VRRP
/// message and the TTL it goes with.
pub fn frames(spec: &FloodSpec) -> Result<Vec<(Garbage, Vec<u8>, u32)>, wire::Error> {
    let endpoints = Endpoints::V4 {
        src: spec.src,
        dst: GROUP,
    };
    let auth = match spec.version {
        Version::V2 => Auth::Pass(pass_key(spec.password.as_bytes())?),
        Version::V3 => Auth::None,
    };
    let repr = AdvertRepr {
        version: spec.version,
        vrid: spec.vrid,
        priority: 200,
        adver_int: spec.adver_int,
        auth,
        addrs: VirtualAddrs::V4(vec![spec.vip]),
    };
    let good = build_advert(&repr, &endpoints, ChecksumMode::PseudoHeader)?;
    // A planted fault keeps the checksum right, so it is the one refused.
    let reseal = |mut b: Vec<u8>| {
        let mut p = Packet::new_unchecked(&mut b[..], Family::Ipv4);
        p.fill_checksum(&endpoints, ChecksumMode::PseudoHeader);
        b
    };
    let first_byte = |version: u8, msg_type: u8| (version << 4) | msg_type;
    let ours = match spec.version {
        Version::V2 => 2,
        Version::V3 => 3,
    };
    let mut out = Vec::new();
    for g in Garbage::ALL
        .into_iter()
        .filter(|g| g.applies_to(spec.version))
    {
        let (bytes, ttl) = match g {
            Garbage::Truncated => (good[..6].to_vec(), 255),
            Garbage::BadChecksum => {
                let mut b = good.clone();
                b[6] ^= 0x5a;
                (b, 255)
            }
            Garbage::WrongVersion => {
                let mut b = good.clone();
                b[0] = first_byte(4, 1);
                (reseal(b), 255)
            }
            Garbage::WrongType => {
                let mut b = good.clone();
                b[0] = first_byte(ours, 2);
                (reseal(b), 255)
            }
            Garbage::WrongPassword => {
                let other = pass_key(b"guess")?;
                let r = AdvertRepr {
                    auth: Auth::Pass(other),
                    ..repr.clone()
                };
                let b = build_advert(&r, &endpoints, ChecksumMode::PseudoHeader)?;
                (b, 255)
            }
            Garbage::UnknownAuthType => {
                let mut b = good.clone();
                Packet::new_unchecked(&mut b[..], Family::Ipv4).set_auth_type(9);
                (reseal(b), 255)
            }
            Garbage::CountMismatch => {
                let mut b = good.clone();
                Packet::new_unchecked(&mut b[..], Family::Ipv4).set_addr_count(2);
                (reseal(b), 255)
            }
            Garbage::RandomBytes => (Sha256::digest(spec.vrid.to_be_bytes()).to_vec(), 255),
            Garbage::Ttl64 => (good.clone(), 64),
        };
        out.push((g, bytes, ttl));
    }
    Ok(out)
}

/// Sends the flood from lab host `host` (whose address is `spec.src`).
/// Bounded: at most `rate × duration` frames and never past the duration
/// (both capped by [`MAX_RATE`] and [`MAX_DURATION`]).
pub fn flood(lab: &Lab, host: &str, spec: &FloodSpec) -> Result<FloodReport, FloodError> {
    let frames = frames(spec)?;
    let rate = spec.rate.clamp(1, MAX_RATE);
    let duration = spec.duration.min(MAX_DURATION);
    let src = spec.src;
    lab.within(host, move || -> Result<FloodReport, FloodError> {
        let open = |ttl: u32| -> std::io::Result<Socket> {
            let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(PROTOCOL)))?;
            s.set_multicast_if_v4(&src)?;
            s.set_multicast_ttl_v4(ttl)?;
            s.set_multicast_loop_v4(false)?;
            s.set_nonblocking(true)?;
            Ok(s)
        };
        let at255 = open(255)?;
        let at64 = open(64)?;
        let to: socket2::SockAddr = SocketAddr::V4(SocketAddrV4::new(GROUP, 0)).into();
        let total = rate.saturating_mul(duration.as_millis() as u64) / 1000;
        let step = Duration::from_secs_f64(BATCH as f64 / rate as f64);
        let start = Instant::now();
        let deadline = start + duration;
        let mut report = FloodReport {
            by_kind: frames.iter().map(|(g, _, _)| (*g, 0)).collect(),
            ..FloodReport::default()
        };
        let mut k = 0usize;
        let mut next = start;
        while report.sent + report.refused < total && Instant::now() < deadline {
            for _ in 0..BATCH.min(total - report.sent - report.refused) {
                let at = k % frames.len();
                k = k.wrapping_add(1);
                let Some(((_, bytes, ttl), (_, n))) =
                    frames.get(at).zip(report.by_kind.get_mut(at))
                else {
                    break;
                };
                let sock = if *ttl == 64 { &at64 } else { &at255 };
                match sock.send_to(bytes, &to) {
                    Ok(_) => {
                        report.sent += 1;
                        *n += 1;
                    }
                    Err(_) => report.refused += 1,
                }
            }
            next += step;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
        }
        report.elapsed = start.elapsed();
        Ok(report)
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitguard_vrrp::wire::{Expect, IpInfo, Reject, link_check, validate};
    use std::net::IpAddr;

    fn spec(version: Version) -> FloodSpec {
        FloodSpec {
            src: Ipv4Addr::new(192, 0, 2, 66),
            version,
            vrid: 51,
            vip: Ipv4Addr::new(192, 0, 2, 3),
            password: "1111".into(),
            adver_int: match version {
                Version::V2 => 1,
                Version::V3 => 10,
            },
            rate: 10_000,
            duration: Duration::from_secs(10),
        }
    }

    /// Every frame fails what it was made to fail, and only that: the flood
    /// exercises each reason, not one reason nine times; and the counter a
    /// daemon bumps for it is the one [`Garbage::reason`] names.
    #[test]
    fn each_frame_fails_its_own_check() {
        for version in [Version::V2, Version::V3] {
            let spec = spec(version);
            let frames = frames(&spec).expect("frames");
            let kinds = Garbage::ALL.iter().filter(|g| g.applies_to(version));
            assert_eq!(frames.len(), kinds.count());
            let vips = [IpAddr::V4(spec.vip)];
            let expect = Expect {
                version,
                vrid: spec.vrid,
                auth: match version {
                    Version::V2 => Some(pass_key(b"1111").expect("key")),
                    Version::V3 => None,
                },
                interval: match version {
                    Version::V2 => Duration::from_secs(1),
                    Version::V3 => Duration::from_millis(100),
                },
                vips: &vips,
                checksum_mode: ChecksumMode::PseudoHeader,
                check_ttl: true,
            };
            for (g, bytes, ttl) in frames {
                let ip = IpInfo {
                    endpoints: Endpoints::V4 {
                        src: spec.src,
                        dst: GROUP,
                    },
                    ttl: ttl as u8,
                };
                let linked = link_check(&ip, &bytes);
                match g {
                    Garbage::Ttl64 => {
                        assert!(matches!(linked, Err(Reject::Ttl { got: 64, .. })))
                    }
                    Garbage::WrongVersion => {
                        assert!(matches!(linked, Err(Reject::Version { got: 4, .. })))
                    }
                    Garbage::WrongType => {
                        assert!(matches!(linked, Err(Reject::Type { got: 2 })))
                    }
                    Garbage::BadChecksum => {
                        assert!(matches!(linked, Err(Reject::Checksum { .. })))
                    }
                    // These pass the link rule; the instance's own checks refuse them.
                    Garbage::WrongPassword | Garbage::UnknownAuthType => {
                        assert!(linked.is_ok(), "{g:?}: {linked:?}");
                    }
                    Garbage::Truncated | Garbage::RandomBytes | Garbage::CountMismatch => {
                        assert!(linked.is_err(), "{g:?}: {linked:?}")
                    }
                }
                match g.reason() {
                    Some(reason) => {
                        let got = validate(&ip, &bytes, &expect).map_err(|r| r.reason());
                        assert_eq!(got.err(), Some(reason), "{version:?} {g:?}");
                    }
                    // Goes to no instance: the daemon routes on the VRID byte.
                    None => assert_ne!(bytes.get(1), Some(&spec.vrid), "{g:?}"),
                }
            }
        }
    }
}
