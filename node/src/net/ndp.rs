//! IPv6 neighbour discovery messages on the wire (RFC 4861 §4.3, §4.4): the
//! ICMPv6 body of a Neighbor Solicitation or Advertisement, as a raw ICMPv6
//! socket reads and writes it (the kernel owns the IPv6 header and fills in and
//! verifies the checksum). The IPv6 counterpart of `arp`: unsolicited
//! advertisements on takeover, and the ownership probe, where a solicitation for
//! a VIP from this node's own address draws an advertisement from every holder,
//! whose target link-layer option names its MAC. Parsing is checked: anything
//! malformed is an error naming the problem, never a panic.

use std::net::Ipv6Addr;

/// ICMPv6 type of a Neighbor Solicitation.
pub const ICMPV6_NEIGHBOUR_SOLICIT: u8 = 135;
/// ICMPv6 type of a Neighbor Advertisement.
pub const ICMPV6_NEIGHBOUR_ADVERT: u8 = 136;
/// Length of either message with one link-layer address option (Ethernet).
pub const NDP_LEN: usize = 32;
/// The fixed part: type, code, checksum, flags/reserved, target.
const FIXED_LEN: usize = 24;

const OPT_SOURCE_LL_ADDR: u8 = 1;
const OPT_TARGET_LL_ADDR: u8 = 2;

const FLAG_ROUTER: u8 = 0x80;
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NdpError {
    #[error("neighbour discovery message too short: {0} bytes, need 24")]
    Truncated(usize),
    #[error("ICMPv6 type {0} is not a neighbour solicitation or advertisement")]
    Type(u8),
    #[error("neighbour discovery with ICMPv6 code {0} (must be 0)")]
    Code(u8),
    #[error("neighbour discovery target {0} is multicast")]
    MulticastTarget(Ipv6Addr),
    #[error("neighbour discovery option at byte {0} has length 0")]
    ZeroLengthOption(usize),
    #[error("neighbour discovery option at byte {at} runs past the end ({len} bytes)")]
    OptionOverrun { at: usize, len: usize },
}

/// A parsed Neighbor Solicitation or Advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdpRepr {
    /// "Who has `target`?"; `source_ll` is the asker's MAC (absent when it asks
    /// from the unspecified address, as duplicate address detection does).
    Solicit {
        target: Ipv6Addr,
        source_ll: Option<[u8; 6]>,
    },
    /// "`target` is at `target_ll`."
    Advert {
        router: bool,
        solicited: bool,
        override_: bool,
        target: Ipv6Addr,
        target_ll: Option<[u8; 6]>,
    },
}

impl NdpRepr {
    /// The advertisement a node sends on takeover (RFC 4861 §7.2.6): Override set,
    /// so receivers replace whatever MAC they cached; Solicited and Router clear.
    pub fn unsolicited(target: Ipv6Addr, mac: [u8; 6]) -> Self {
        NdpRepr::Advert {
            router: false,
            solicited: false,
            override_: true,
            target,
            target_ll: Some(mac),
        }
    }

    /// The ownership probe: a solicitation for `target` carrying this node's MAC
    /// (RFC 4861 §4.3 requires it in a multicast solicitation from a unicast
    /// source; without it a holder would have to resolve us first).
    pub fn probe(target: Ipv6Addr, mac: [u8; 6]) -> Self {
        NdpRepr::Solicit {
            target,
            source_ll: Some(mac),
        }
    }

    pub fn target(&self) -> Ipv6Addr {
        match *self {
            NdpRepr::Solicit { target, .. } | NdpRepr::Advert { target, .. } => target,
        }
    }

    /// Parses an ICMPv6 body. Options other than the link-layer address of the
    /// message's own kind are skipped, as are link-layer options that are not
    /// 6 bytes long (not Ethernet); the first one counts.
    pub fn parse(b: &[u8]) -> Result<Self, NdpError> {
        let fixed: &[u8; FIXED_LEN] = b
            .get(..FIXED_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(NdpError::Truncated(b.len()))?;
        let kind = fixed[0];
        if kind != ICMPV6_NEIGHBOUR_SOLICIT && kind != ICMPV6_NEIGHBOUR_ADVERT {
            return Err(NdpError::Type(kind));
        }
        if fixed[1] != 0 {
            return Err(NdpError::Code(fixed[1]));
        }
        let mut t = [0u8; 16];
        t.copy_from_slice(&fixed[8..24]);
        let target = Ipv6Addr::from(t);
        if target.is_multicast() {
            return Err(NdpError::MulticastTarget(target));
        }
        let wanted = if kind == ICMPV6_NEIGHBOUR_SOLICIT {
            OPT_SOURCE_LL_ADDR
        } else {
            OPT_TARGET_LL_ADDR
        };
        let ll = link_layer_option(b, FIXED_LEN, wanted)?;
        Ok(if kind == ICMPV6_NEIGHBOUR_SOLICIT {
            NdpRepr::Solicit {
                target,
                source_ll: ll,
            }
        } else {
            let flags = fixed[4];
            NdpRepr::Advert {
                router: flags & FLAG_ROUTER != 0,
                solicited: flags & FLAG_SOLICITED != 0,
                override_: flags & FLAG_OVERRIDE != 0,
                target,
                target_ll: ll,
            }
        })
    }

    /// The ICMPv6 body, checksum left zero for the kernel.
    pub fn emit(&self) -> Vec<u8> {
        let mut m = vec![0u8; FIXED_LEN];
        let (ll, opt) = match *self {
            NdpRepr::Solicit { target, source_ll } => {
                m[0] = ICMPV6_NEIGHBOUR_SOLICIT;
                m[8..24].copy_from_slice(&target.octets());
                (source_ll, OPT_SOURCE_LL_ADDR)
            }
            NdpRepr::Advert {
                router,
                solicited,
                override_,
                target,
                target_ll,
            } => {
                m[0] = ICMPV6_NEIGHBOUR_ADVERT;
                for (set, bit) in [
                    (router, FLAG_ROUTER),
                    (solicited, FLAG_SOLICITED),
                    (override_, FLAG_OVERRIDE),
                ] {
                    if set {
                        m[4] |= bit;
                    }
                }
                m[8..24].copy_from_slice(&target.octets());
                (target_ll, OPT_TARGET_LL_ADDR)
            }
        };
        if let Some(mac) = ll {
            m.extend_from_slice(&[opt, 1]);
            m.extend_from_slice(&mac);
        }
        m
    }
}

/// The first `kind` option with a 6-byte address, walking every option so that
/// a malformed one anywhere refuses the message (RFC 4861 §4.6: length 0 is
/// invalid and the message must be discarded).
fn link_layer_option(b: &[u8], mut at: usize, kind: u8) -> Result<Option<[u8; 6]>, NdpError> {
    let mut found = None;
    while at < b.len() {
        let Some(&len_units) = b.get(at + 1) else {
            return Err(NdpError::OptionOverrun { at, len: b.len() });
        };
        if len_units == 0 {
            return Err(NdpError::ZeroLengthOption(at));
        }
        let end = at + 8 * usize::from(len_units);
        let Some(opt) = b.get(at..end) else {
            return Err(NdpError::OptionOverrun { at, len: b.len() });
        };
        if found.is_none() && opt[0] == kind && len_units == 1 {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&opt[2..8]);
            found = Some(mac);
        }
        at = end;
    }
    Ok(found)
}

/// The solicited-node multicast group of `addr` (RFC 4291 §2.7.1): where a
/// solicitation for it goes, so only the nodes that may hold it are woken.
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x05];

    fn vip() -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3)
    }

    // A solicitation for 2001:db8::3 from 02:00:00:00:00:05, byte by byte.
    const NS: [u8; 32] = [
        135, 0, 0, 0, 0, 0, 0, 0, // type, code, checksum, reserved
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, // target
        1, 1, 0x02, 0, 0, 0, 0, 0x05, // source link-layer address
    ];

    #[test]
    fn a_probe_is_a_solicitation_with_our_mac() {
        let ns = NdpRepr::probe(vip(), MAC);
        assert_eq!(ns.emit(), NS);
        assert_eq!(NdpRepr::parse(&NS), Ok(ns));
        assert_eq!(ns.target(), vip());
    }

    #[test]
    fn an_unsolicited_advert_overrides_and_names_the_mac() {
        let na = NdpRepr::unsolicited(vip(), MAC).emit();
        assert_eq!(na.len(), NDP_LEN);
        assert_eq!(&na[..8], &[136, 0, 0, 0, 0x20, 0, 0, 0]);
        assert_eq!(&na[8..24], &vip().octets());
        assert_eq!(&na[24..32], &[2, 1, 0x02, 0, 0, 0, 0, 0x05]);
        assert_eq!(NdpRepr::parse(&na), Ok(NdpRepr::unsolicited(vip(), MAC)));
    }

    #[test]
    fn a_solicited_answer_from_the_kernel_parses_with_its_flags() {
        // Linux answers a multicast solicitation: Solicited and Override set.
        let mut na = NdpRepr::unsolicited(vip(), MAC).emit();
        na[4] = 0x60;
        assert_eq!(
            NdpRepr::parse(&na),
            Ok(NdpRepr::Advert {
                router: false,
                solicited: true,
                override_: true,
                target: vip(),
                target_ll: Some(MAC),
            })
        );
    }

    #[test]
    fn options_are_walked_skipped_and_checked() {
        // A nonce option (14, 8 bytes) before the address: skipped.
        let mut b = NS[..24].to_vec();
        b.extend_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]);
        b.extend_from_slice(&NS[24..]);
        assert_eq!(NdpRepr::parse(&b), Ok(NdpRepr::probe(vip(), MAC)));
        // No option at all: a solicitation from the unspecified address.
        assert_eq!(
            NdpRepr::parse(&NS[..24]),
            Ok(NdpRepr::Solicit {
                target: vip(),
                source_ll: None
            })
        );
        // A target-address option in a solicitation is not its source address.
        let mut b = NS;
        b[24] = 2;
        assert_eq!(
            NdpRepr::parse(&b),
            Ok(NdpRepr::Solicit {
                target: vip(),
                source_ll: None
            })
        );
        let mut b = NS;
        b[25] = 0;
        assert_eq!(NdpRepr::parse(&b), Err(NdpError::ZeroLengthOption(24)));
        let mut b = NS;
        b[25] = 2;
        assert_eq!(
            NdpRepr::parse(&b),
            Err(NdpError::OptionOverrun { at: 24, len: 32 })
        );
        assert_eq!(
            NdpRepr::parse(&NS[..25]),
            Err(NdpError::OptionOverrun { at: 24, len: 25 })
        );
    }

    #[test]
    fn rejects_what_is_not_neighbour_discovery() {
        assert_eq!(NdpRepr::parse(&NS[..23]), Err(NdpError::Truncated(23)));
        let mut b = NS;
        b[0] = 128;
        assert_eq!(NdpRepr::parse(&b), Err(NdpError::Type(128)));
        let mut b = NS;
        b[1] = 1;
        assert_eq!(NdpRepr::parse(&b), Err(NdpError::Code(1)));
        let mut b = NS;
        b[8] = 0xff;
        assert!(matches!(
            NdpRepr::parse(&b),
            Err(NdpError::MulticastTarget(_))
        ));
    }

    #[test]
    fn parse_never_panics_and_round_trips() {
        for len in 0..48 {
            let mut v = NS.to_vec();
            v.resize(len, 0xaa);
            let _ = NdpRepr::parse(&v);
        }
        for i in 0..NS.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut b = NS;
                b[i] ^= flip;
                if let Ok(r) = NdpRepr::parse(&b) {
                    assert_eq!(NdpRepr::parse(&r.emit()), Ok(r));
                }
            }
        }
    }

    #[test]
    fn the_solicited_node_group_keeps_the_low_24_bits() {
        assert_eq!(
            solicited_node(vip()),
            "ff02::1:ff00:3".parse::<Ipv6Addr>().expect("literal")
        );
        assert_eq!(
            solicited_node("fe80::ff:fe12:3456".parse().expect("literal")),
            "ff02::1:ff12:3456".parse::<Ipv6Addr>().expect("literal")
        );
    }
}
