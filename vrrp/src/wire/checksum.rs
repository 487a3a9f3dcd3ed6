//! The internet checksum (RFC 1071) and the VRRP pseudo-headers: which bytes each
//! version and family covers. Written here because it is short and no crate already
//! in the graph provides it.

use super::{ChecksumMode, Endpoints, PROTOCOL};
use crate::Version;

/// Adds `data` as big-endian 16-bit words to a running 32-bit sum (an odd trailing
/// byte is padded with zero). Callers must pass slices that start at even offsets of
/// the checksummed message so the words line up.
pub(crate) fn accumulate(mut sum: u32, data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        if let [hi, lo] = w {
            sum = sum.wrapping_add(u32::from(u16::from_be_bytes([*hi, *lo])));
        }
    }
    if let [last] = words.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
    }
    // Fold early so a long slice can never overflow the accumulator.
    fold(sum)
}

/// Folds the carries back in (ones' complement addition).
fn fold(mut sum: u32) -> u32 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// The internet checksum of `data`: the ones' complement of the ones' complement sum.
pub fn internet_checksum(data: &[u8]) -> u16 {
    finish(accumulate(0, data))
}

fn finish(sum: u32) -> u16 {
    // fold() leaves at most 16 bits, so the cast is exact.
    !(fold(sum) as u16)
}

/// The pseudo-header sum for this message, or 0 where none applies.
fn pseudo_header(version: Version, endpoints: &Endpoints, mode: ChecksumMode, len: usize) -> u32 {
    match (version, endpoints, mode) {
        (Version::V2, _, _) | (Version::V3, Endpoints::V4 { .. }, ChecksumMode::NoPseudoHeader) => {
            0
        }
        (Version::V3, Endpoints::V4 { src, dst }, ChecksumMode::PseudoHeader) => {
            let mut sum = accumulate(0, &src.octets());
            sum = accumulate(sum, &dst.octets());
            sum = accumulate(sum, &[0, PROTOCOL]);
            // A VRRP message is at most a few kB; saturate rather than wrap if not.
            accumulate(sum, &u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes())
        }
        (Version::V3, Endpoints::V6 { src, dst }, _) => {
            let mut sum = accumulate(0, &src.octets());
            sum = accumulate(sum, &dst.octets());
            sum = accumulate(sum, &u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
            accumulate(sum, &[0, 0, 0, PROTOCOL])
        }
    }
}

/// Offset of the checksum field in the VRRP header.
pub(crate) const FIELD: core::ops::Range<usize> = 6..8;

/// The checksum `msg` should carry, computed as if its checksum field were zero.
pub(crate) fn compute(
    version: Version,
    endpoints: &Endpoints,
    mode: ChecksumMode,
    msg: &[u8],
) -> u16 {
    let mut sum = pseudo_header(version, endpoints, mode, msg.len());
    sum = accumulate(sum, msg.get(..FIELD.start).unwrap_or(msg));
    sum = accumulate(sum, msg.get(FIELD.end..).unwrap_or(&[]));
    finish(sum)
}

/// Whether `msg` (checksum field included) sums to the all-ones value. Unlike a
/// compare with [`compute`] this accepts both encodings of zero (0x0000 and 0xffff).
pub(crate) fn verify(
    version: Version,
    endpoints: &Endpoints,
    mode: ChecksumMode,
    msg: &[u8],
) -> bool {
    let sum = accumulate(pseudo_header(version, endpoints, mode, msg.len()), msg);
    fold(sum) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn rfc1071_example() {
        // The worked example of RFC 1071 §3: sum 0xddf2, checksum its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(
            internet_checksum(&[0x12, 0x34, 0x56]),
            internet_checksum(&[0x12, 0x34, 0x56, 0x00])
        );
    }

    #[test]
    fn computed_checksum_verifies() {
        let ep = Endpoints::V4 {
            src: Ipv4Addr::new(192, 0, 2, 5),
            dst: Ipv4Addr::new(224, 0, 0, 18),
        };
        let mut msg = [0x31, 0x34, 0x64, 0x01, 0x00, 0x64, 0xaa, 0xbb, 192, 0, 2, 3];
        for mode in [ChecksumMode::PseudoHeader, ChecksumMode::NoPseudoHeader] {
            let c = compute(Version::V3, &ep, mode, &msg);
            msg[6..8].copy_from_slice(&c.to_be_bytes());
            assert!(verify(Version::V3, &ep, mode, &msg));
        }
    }
}
