//! The zero-copy view of a VRRP message: [`Packet`] over any byte buffer, with the
//! field layout of RFC 3768 §5 (v2) and RFC 5798 §5 (v3). Reads and writes go through
//! bounds-checked helpers, so no accessor can panic, even on an unchecked buffer;
//! [`Packet::new_checked`] additionally guarantees every field is really present.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::checksum;
use super::{AUTH_LEN, ChecksumMode, Endpoints, Error, Family, HEADER_LEN, Result};
use crate::Version;

/// Byte positions of the header fields.
mod field {
    use core::ops::Range;

    /// Version (high nibble) and type (low nibble).
    pub const VER_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    /// v2: authentication type.
    pub const AUTH_TYPE: usize = 4;
    /// v2: advertisement interval in whole seconds.
    pub const ADVER_INT: usize = 5;
    /// v3: 4 reserved bits, then the 12-bit max advert interval in centiseconds.
    pub const RSVD_MAX_ADVER_INT: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
    /// Start of the address list (both versions).
    pub const ADDRESSES: usize = 8;
}

/// A VRRP message in `buffer`, read as carried over `family`.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
    family: Family,
}

/// The message length a version, family and address count imply.
pub(crate) fn message_len(version: Version, family: Family, count: usize) -> usize {
    let auth = match version {
        Version::V2 => AUTH_LEN,
        Version::V3 => 0,
    };
    HEADER_LEN + count * family.addr_len() + auth
}

/// The version a header nibble names, if any.
pub(crate) fn version_from_nibble(n: u8) -> Option<Version> {
    match n {
        2 => Some(Version::V2),
        3 => Some(Version::V3),
        _ => None,
    }
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it. Accessors never panic, but past the end of
    /// a short buffer they read zeros; prefer [`Packet::new_checked`] for input.
    pub fn new_unchecked(buffer: T, family: Family) -> Packet<T> {
        Packet { buffer, family }
    }

    /// Wraps a buffer after [`Packet::check_len`].
    pub fn new_checked(buffer: T, family: Family) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer, family);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds exactly one complete message: the fixed header,
    /// a known version (2 only over IPv4), and a length equal to what the address
    /// count implies (plus the 8 auth bytes for v2). Trailing bytes are refused, so
    /// the caller must cut the message at the IP length (Ethernet padding off).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated { len });
        }
        let version = self.checked_version()?;
        let expected = message_len(version, self.family, usize::from(self.addr_count()));
        if len != expected {
            return Err(Error::Length {
                len,
                count: self.addr_count(),
                family: self.family,
                expected,
            });
        }
        Ok(())
    }

    /// The known version of this message, or why it has none.
    pub fn checked_version(&self) -> Result<Version> {
        match (version_from_nibble(self.version()), self.family) {
            (Some(Version::V2), Family::Ipv6) => Err(Error::V2NotIpv4(Family::Ipv6)),
            (Some(v), _) => Ok(v),
            (None, _) => Err(Error::Version(self.version())),
        }
    }

    /// Consumes the view, giving the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole buffer.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The family the addresses are read as.
    pub fn family(&self) -> Family {
        self.family
    }

    fn byte(&self, i: usize) -> u8 {
        self.buffer.as_ref().get(i).copied().unwrap_or(0)
    }

    /// The version nibble (any value).
    pub fn version(&self) -> u8 {
        self.byte(field::VER_TYPE) >> 4
    }

    /// The type nibble (1 = ADVERTISEMENT).
    pub fn msg_type(&self) -> u8 {
        self.byte(field::VER_TYPE) & 0x0f
    }

    /// Virtual router ID.
    pub fn vrid(&self) -> u8 {
        self.byte(field::VRID)
    }

    /// Sender's priority (0 = master is leaving, 255 = address owner).
    pub fn priority(&self) -> u8 {
        self.byte(field::PRIORITY)
    }

    /// Number of addresses in the list.
    pub fn addr_count(&self) -> u8 {
        self.byte(field::COUNT)
    }

    /// v2 only: the authentication type byte.
    pub fn auth_type(&self) -> u8 {
        self.byte(field::AUTH_TYPE)
    }

    /// The interval field in its version's units: v2 `adver_int` in whole seconds
    /// (8 bits), v3 `max_adver_int` in centiseconds (low 12 bits; the 4 reserved bits
    /// are ignored as RFC 5798 asks of receivers). Unknown versions read as v3.
    pub fn interval_raw(&self) -> u16 {
        if version_from_nibble(self.version()) == Some(Version::V2) {
            u16::from(self.byte(field::ADVER_INT))
        } else {
            let r = field::RSVD_MAX_ADVER_INT;
            u16::from_be_bytes([self.byte(r.start), self.byte(r.start + 1)])
                & super::MAX_V3_INTERVAL_CS
        }
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([
            self.byte(field::CHECKSUM.start),
            self.byte(field::CHECKSUM.start + 1),
        ])
    }

    /// The address list's bytes (empty if the buffer is shorter than the count says).
    fn addr_bytes(&self) -> &[u8] {
        let end = field::ADDRESSES + usize::from(self.addr_count()) * self.family.addr_len();
        self.buffer
            .as_ref()
            .get(field::ADDRESSES..end)
            .unwrap_or(&[])
    }

    /// The advertised addresses, in wire order.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let family = self.family;
        self.addr_bytes()
            .chunks_exact(family.addr_len())
            .filter_map(move |c| match family {
                Family::Ipv4 => <[u8; 4]>::try_from(c)
                    .ok()
                    .map(|o| IpAddr::V4(Ipv4Addr::from(o))),
                Family::Ipv6 => <[u8; 16]>::try_from(c)
                    .ok()
                    .map(|o| IpAddr::V6(Ipv6Addr::from(o))),
            })
    }

    /// v2 only: the 8 authentication data bytes after the address list (zeros if
    /// absent).
    pub fn auth_data(&self) -> [u8; AUTH_LEN] {
        let start = field::ADDRESSES + usize::from(self.addr_count()) * self.family.addr_len();
        let mut out = [0u8; AUTH_LEN];
        if let Some(src) = self.buffer.as_ref().get(start..start + AUTH_LEN) {
            out.copy_from_slice(src);
        }
        out
    }

    /// The checksum this message should carry for `version`, `endpoints` and `mode`.
    pub fn compute_checksum(
        &self,
        version: Version,
        endpoints: &Endpoints,
        mode: ChecksumMode,
    ) -> u16 {
        checksum::compute(version, endpoints, mode, self.buffer.as_ref())
    }

    /// Whether the message's checksum is valid for `endpoints` and `mode`; the version
    /// is read from the message (unknown versions never verify).
    pub fn verify_checksum(&self, endpoints: &Endpoints, mode: ChecksumMode) -> bool {
        match version_from_nibble(self.version()) {
            Some(v) => checksum::verify(v, endpoints, mode, self.buffer.as_ref()),
            None => false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_byte(&mut self, i: usize, v: u8) {
        if let Some(b) = self.buffer.as_mut().get_mut(i) {
            *b = v;
        }
    }

    fn set_bytes(&mut self, start: usize, v: &[u8]) {
        if let Some(dst) = self
            .buffer
            .as_mut()
            .get_mut(start..start.saturating_add(v.len()))
        {
            dst.copy_from_slice(v);
        }
    }

    /// Sets version and type.
    pub fn set_version_type(&mut self, version: u8, msg_type: u8) {
        self.set_byte(field::VER_TYPE, (version << 4) | (msg_type & 0x0f));
    }

    /// Sets the virtual router ID.
    pub fn set_vrid(&mut self, v: u8) {
        self.set_byte(field::VRID, v);
    }

    /// Sets the priority.
    pub fn set_priority(&mut self, v: u8) {
        self.set_byte(field::PRIORITY, v);
    }

    /// Sets the address count (set it before writing addresses or auth data).
    pub fn set_addr_count(&mut self, v: u8) {
        self.set_byte(field::COUNT, v);
    }

    /// v2: sets the authentication type.
    pub fn set_auth_type(&mut self, v: u8) {
        self.set_byte(field::AUTH_TYPE, v);
    }

    /// v2: sets `adver_int` (seconds).
    pub fn set_adver_int(&mut self, v: u8) {
        self.set_byte(field::ADVER_INT, v);
    }

    /// v3: sets `max_adver_int` (centiseconds, 12 bits) with the reserved bits zero.
    pub fn set_max_adver_int(&mut self, v: u16) {
        self.set_bytes(
            field::RSVD_MAX_ADVER_INT.start,
            &(v & super::MAX_V3_INTERVAL_CS).to_be_bytes(),
        );
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.set_bytes(field::CHECKSUM.start, &v.to_be_bytes());
    }

    /// Writes address `index` of the list (ignored if the family differs from the
    /// packet's or the buffer is too short).
    pub fn set_address(&mut self, index: usize, addr: IpAddr) {
        let start = index
            .saturating_mul(self.family.addr_len())
            .saturating_add(field::ADDRESSES);
        match (addr, self.family) {
            (IpAddr::V4(a), Family::Ipv4) => self.set_bytes(start, &a.octets()),
            (IpAddr::V6(a), Family::Ipv6) => self.set_bytes(start, &a.octets()),
            _ => {}
        }
    }

    /// v2: writes the 8 authentication data bytes after the address list.
    pub fn set_auth_data(&mut self, data: &[u8; AUTH_LEN]) {
        let start = field::ADDRESSES + usize::from(self.addr_count()) * self.family.addr_len();
        self.set_bytes(start, data);
    }

    /// Computes and writes the checksum; the version is read from the message.
    pub fn fill_checksum(&mut self, endpoints: &Endpoints, mode: ChecksumMode) {
        if let Some(v) = version_from_nibble(self.version()) {
            let c = self.compute_checksum(v, endpoints, mode);
            self.set_checksum(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // keepalived 2.2.7, v2 vrid 51 prio 150 PASS "1111", VIP 192.0.2.3.
    const V2: [u8; 20] = [
        0x21, 0x33, 0x96, 0x01, 0x01, 0x01, 0x23, 0x64, 192, 0, 2, 3, b'1', b'1', b'1', b'1', 0, 0,
        0, 0,
    ];

    #[test]
    fn deconstruct_v2() {
        let p = Packet::new_checked(&V2[..], Family::Ipv4).expect("valid");
        assert_eq!(
            (p.version(), p.msg_type(), p.vrid(), p.priority()),
            (2, 1, 51, 150)
        );
        assert_eq!((p.addr_count(), p.auth_type(), p.interval_raw()), (1, 1, 1));
        assert_eq!(p.checksum(), 0x2364);
        assert_eq!(
            p.addresses().collect::<Vec<_>>(),
            vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3))]
        );
        assert_eq!(&p.auth_data(), b"1111\0\0\0\0");
    }

    #[test]
    fn check_len_refuses_short_long_and_unknown() {
        assert_eq!(
            Packet::new_checked(&V2[..7], Family::Ipv4).err(),
            Some(Error::Truncated { len: 7 })
        );
        assert!(matches!(
            Packet::new_checked(&V2[..19], Family::Ipv4),
            Err(Error::Length { expected: 20, .. })
        ));
        let mut long = V2.to_vec();
        long.push(0);
        assert!(matches!(
            Packet::new_checked(&long[..], Family::Ipv4),
            Err(Error::Length { len: 21, .. })
        ));
        let mut v4 = V2;
        v4[0] = 0x41;
        assert_eq!(
            Packet::new_checked(&v4[..], Family::Ipv4).err(),
            Some(Error::Version(4))
        );
        assert_eq!(
            Packet::new_checked(&V2[..], Family::Ipv6).err(),
            Some(Error::V2NotIpv4(Family::Ipv6))
        );
    }

    #[test]
    fn unchecked_accessors_never_panic() {
        let p = Packet::new_unchecked(&[0x31u8, 7, 9, 200][..], Family::Ipv6);
        assert_eq!(p.addresses().count(), 0);
        assert_eq!(p.auth_data(), [0; 8]);
        assert_eq!(p.checksum(), 0);
        let mut short = [0u8; 3];
        let mut p = Packet::new_unchecked(&mut short[..], Family::Ipv4);
        p.set_addr_count(9);
        p.set_address(5, IpAddr::V4(Ipv4Addr::LOCALHOST));
        p.set_auth_data(&[1; 8]);
        p.set_checksum(1);
    }
}
