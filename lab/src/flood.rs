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
    AdvertRepr, Auth, ChecksumMode, Endpoints, Family, Packet, VirtualAddrs, build_advert,
    internet_checksum, pass_key,
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
    Frames(String),
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
    /// PASS with another password.
    WrongPassword,
    /// Auth type 9.
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
}

/// The flood: at `rate` frames a second for `duration`, from `src` (the
/// flooding host's own address) at VRRP's group, every kind of [`Garbage`]
/// in turn, naming `vrid` and `vip` (a v2 advert with PASS `password`, as
/// the lab's standard pair runs).
#[derive(Debug, Clone)]
pub struct FloodSpec {
    pub src: Ipv4Addr,
    pub vrid: u8,
    pub vip: Ipv4Addr,
    pub password: String,
    pub rate: u64,
    pub duration: Duration,
}

/// What was sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FloodReport {
    pub sent: u64,
    /// Sends the kernel refused (a full queue under load): counted, not retried.
    pub refused: u64,
    pub elapsed: Duration,
}

/// One frame of each kind: the VRRP message and the TTL it goes with.
pub fn frames(spec: &FloodSpec) -> Result<Vec<(Garbage, Vec<u8>, u32)>, String> {
    let endpoints = Endpoints::V4 {
        src: spec.src,
        dst: GROUP,
    };
    let key = pass_key(spec.password.as_bytes()).map_err(|e| e.to_string())?;
    let repr = AdvertRepr {
        version: Version::V2,
        vrid: spec.vrid,
        priority: 200,
        adver_int: 1,
        auth: Auth::Pass(key),
        addrs: VirtualAddrs::V4(vec![spec.vip]),
    };
    let good =
        build_advert(&repr, &endpoints, ChecksumMode::PseudoHeader).map_err(|e| e.to_string())?;
    // A v2 checksum covers the message alone.
    let reseal = |mut b: Vec<u8>| {
        let mut p = Packet::new_unchecked(&mut b[..], Family::Ipv4);
        p.set_checksum(0);
        let sum = internet_checksum(p.as_bytes());
        p.set_checksum(sum);
        b
    };
    let mut out = Vec::new();
    for g in Garbage::ALL {
        let (bytes, ttl) = match g {
            Garbage::Truncated => (good[..6].to_vec(), 255),
            Garbage::BadChecksum => {
                let mut b = good.clone();
                b[6] ^= 0x5a;
                (b, 255)
            }
            Garbage::WrongVersion => {
                let mut b = good.clone();
                b[0] = 0x41;
                (reseal(b), 255)
            }
            Garbage::WrongType => {
                let mut b = good.clone();
                b[0] = 0x22;
                (reseal(b), 255)
            }
            Garbage::WrongPassword => {
                let other = pass_key(b"guess").map_err(|e| e.to_string())?;
                let r = AdvertRepr {
                    auth: Auth::Pass(other),
                    ..repr.clone()
                };
                let b = build_advert(&r, &endpoints, ChecksumMode::PseudoHeader)
                    .map_err(|e| e.to_string())?;
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
    let frames = frames(spec).map_err(FloodError::Frames)?;
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
        let mut report = FloodReport::default();
        let mut k = 0usize;
        let mut next = start;
        while report.sent + report.refused < total && Instant::now() < deadline {
            for _ in 0..BATCH.min(total - report.sent - report.refused) {
                let (_, bytes, ttl) = &frames[k % frames.len()];
                k = k.wrapping_add(1);
                let sock = if *ttl == 64 { &at64 } else { &at255 };
                match sock.send_to(bytes, &to) {
                    Ok(_) => report.sent += 1,
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
    use splitguard_vrrp::wire::{IpInfo, Reject, link_check};

    fn spec() -> FloodSpec {
        FloodSpec {
            src: Ipv4Addr::new(192, 0, 2, 66),
            vrid: 51,
            vip: Ipv4Addr::new(192, 0, 2, 3),
            password: "1111".into(),
            rate: 10_000,
            duration: Duration::from_secs(10),
        }
    }

    /// Every frame fails what it was made to fail, and only that: the flood
    /// exercises each reason, not one reason nine times.
    #[test]
    fn each_frame_fails_its_own_check() {
        let frames = frames(&spec()).expect("frames");
        assert_eq!(frames.len(), Garbage::ALL.len());
        for (g, bytes, ttl) in frames {
            let ip = IpInfo {
                endpoints: Endpoints::V4 {
                    src: spec().src,
                    dst: GROUP,
                },
                ttl: ttl as u8,
            };
            let got = link_check(&ip, &bytes);
            match g {
                Garbage::Ttl64 => assert!(matches!(got, Err(Reject::Ttl { got: 64, .. }))),
                Garbage::WrongVersion => {
                    assert!(matches!(got, Err(Reject::Version { got: 4, .. })))
                }
                Garbage::WrongType => assert!(matches!(got, Err(Reject::Type { got: 2 }))),
                Garbage::BadChecksum => assert!(matches!(got, Err(Reject::Checksum { .. }))),
                Garbage::Truncated | Garbage::RandomBytes => assert!(got.is_err(), "{g:?}"),
                // These pass the link rule; the instance's own checks refuse them.
                Garbage::WrongPassword | Garbage::UnknownAuthType => {
                    assert!(got.is_ok(), "{g:?}: {got:?}");
                }
                Garbage::CountMismatch => assert!(got.is_err(), "{g:?}: {got:?}"),
            }
        }
    }
}
