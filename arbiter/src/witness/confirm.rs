//! Peer confirmation (issue 20), pure: the authenticated datagram the two
//! daemons of a pair exchange directly, and the master's ring of its own
//! nonces that dates what the peer says.
//!
//! An etcd lease referees who may hold each VRID's VIPs. A master that cannot
//! renew its lease keeps its VIPs only while its peer confirms, over this path,
//! that it still hears the master's adverts and does not contend. Each daemon
//! sends a [`Datagram`] to its peer every `confirm_interval`
//! ([`DEFAULT_CONFIRM_INTERVAL`]) and on demand; the node's edge
//! (`crate::witness::confirm` in `splitguard-node`) carries it.
//!
//! # Dating a confirmation without trusting the peer's clock
//!
//! Every datagram carries a fresh `nonce` and `echo`, the latest nonce its
//! sender has received (authenticated) from the other side. The master keeps
//! its own recent nonces with the instants it sent them, on its own clock
//! ([`Nonces`]). The peer cannot have received nonce `n` before the master sent
//! it, and it states its entries when it sends, after that receipt; so a
//! confirmation echoing `n` is known to have been true at or after
//! [`Nonces::sent_at`]`(n)` on the master's clock: the master takes "the peer
//! confirmed VRID v as of `sent_at(echo)`", and nothing later. Delaying a
//! datagram or replaying it (the tag does not stop a replay) therefore never
//! extends a confirmation: the replayed copy dates from the same send instant.
//! An echo of a nonce the ring does not know (too old, from another process,
//! or none at all) dates nothing and gives nothing. No cross-node clock is
//! trusted, and no counters or replay windows are needed for safety; the ring
//! is bounded ([`NONCE_RING`]), so forgetting old nonces only loses
//! confirmations, never invents one.
//!
//! Nonces are a per-process random 32-bit prefix in the high bits and a
//! counter below it ([`Nonces::from_os_rng`]), so a restarted master does not
//! know the nonces its previous process sent, and an old confirmation echoing
//! one of them dates nothing.
//!
//! # Wire layout (version 1)
//!
//! Big-endian; `N` is the node name's length, `E` the number of entries.
//!
//! ```text
//! offset      size  field
//!  0           4    magic "SGWC"
//!  4           1    version (1)
//!  5           1    flags: bit 0 = echo present; bits 1-7 zero
//!  6           1    N, the node name's length in bytes, 1..=64
//!  7           2    E, the number of entries, 0..=1024
//!  9           8    nonce
//! 17           8    echo (zero when absent)
//! 25           N    node name, UTF-8
//! 25+N         3×E  entries: family (4 or 6), VRID, flags
//!                   (bit 0 hears_master, bit 1 wants_preempt,
//!                   bit 2 released, bits 3-7 zero)
//! 25+N+3E     32    tag: HMAC-SHA256(key, every byte before it)
//! ```
//!
//! At most [`MAX_DATAGRAM_LEN`] (3,193) bytes. [`decode`] reads only the fixed
//! header's magic, version and the two lengths before it checks the tag (those
//! say where the tag is); every other field is read only from an authenticated
//! datagram. The tag is compared in constant time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub use splitguard_vrrp::wire::Family;

/// The first four bytes of every confirmation datagram.
pub const MAGIC: [u8; 4] = *b"SGWC";
/// The wire version this codec writes and reads.
pub const VERSION: u8 = 1;
/// The fixed header, up to the node name.
pub const HEADER_LEN: usize = 25;
/// HMAC-SHA256's tag, the datagram's last bytes.
pub const TAG_LEN: usize = 32;
/// One per-VRID entry: family, VRID, flags.
pub const ENTRY_LEN: usize = 3;
/// The longest node name, in bytes (Linux's `HOST_NAME_MAX`).
pub const MAX_NAME_LEN: usize = 64;
/// The most entries one datagram carries.
pub const MAX_ENTRIES: usize = 1024;
/// The shortest shared secret, in bytes.
pub const MIN_KEY_LEN: usize = 16;
/// The longest datagram: the most a receiver needs to read at once.
pub const MAX_DATAGRAM_LEN: usize = HEADER_LEN + MAX_NAME_LEN + MAX_ENTRIES * ENTRY_LEN + TAG_LEN;
/// How often a daemon sends its confirmation when the config does not say.
pub const DEFAULT_CONFIRM_INTERVAL: Duration = Duration::from_millis(500);
/// The master's own nonces remembered ([`Nonces::new`]): 32 s of them at the
/// default interval.
pub const NONCE_RING: usize = 64;

const OFF_FLAGS: usize = 5;
const OFF_NAME_LEN: usize = 6;
const OFF_COUNT: usize = 7;
const OFF_NONCE: usize = 9;
const OFF_ECHO: usize = 17;
const FLAG_ECHO: u8 = 0x01;
const ENTRY_HEARS_MASTER: u8 = 0x01;
const ENTRY_WANTS_PREEMPT: u8 = 0x02;
const ENTRY_RELEASED: u8 = 0x04;
const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;

type HmacSha256 = Hmac<Sha256>;

/// Why a datagram (or a [`Datagram`] being built) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfirmError {
    /// Shorter than the header and tag, or than its own lengths say.
    #[error("too short: {len} bytes, need {need}")]
    TooShort { len: usize, need: usize },
    /// Not a confirmation datagram.
    #[error("bad magic (not a splitguard confirmation)")]
    BadMagic,
    /// A version this codec does not read.
    #[error("unknown version {0}")]
    UnknownVersion(u8),
    /// The node name's length is 0 or over [`MAX_NAME_LEN`].
    #[error("bad node name length {len} (1 to {MAX_NAME_LEN} bytes)")]
    BadLength { len: usize },
    /// More than [`MAX_ENTRIES`] entries.
    #[error("{count} entries (at most {MAX_ENTRIES})")]
    TooManyEntries { count: usize },
    /// Bytes after the tag.
    #[error("{extra} trailing bytes after the tag")]
    TrailingBytes { extra: usize },
    /// The tag does not match: another key, or altered on the way.
    #[error("bad tag (wrong key, or altered in transit)")]
    BadTag,
    /// The node name is not UTF-8.
    #[error("node name is not UTF-8")]
    BadName,
    /// An entry's family is neither 4 nor 6.
    #[error("unknown address family {0}")]
    UnknownFamily(u8),
    /// Bits that must be zero are set (flags), or an absent echo is not zero.
    #[error("reserved bits set at byte {offset}")]
    ReservedBits { offset: usize },
    /// The shared secret is shorter than [`MIN_KEY_LEN`]: nothing is accepted
    /// under it.
    #[error("key too short: {len} bytes (at least {MIN_KEY_LEN})")]
    ShortKey { len: usize },
}

impl ConfirmError {
    /// A stable snake_case name, for counters, metric labels and log fields.
    pub fn label(&self) -> &'static str {
        match self {
            ConfirmError::TooShort { .. } => "too_short",
            ConfirmError::BadMagic => "bad_magic",
            ConfirmError::UnknownVersion(_) => "unknown_version",
            ConfirmError::BadLength { .. } => "bad_length",
            ConfirmError::TooManyEntries { .. } => "too_many_entries",
            ConfirmError::TrailingBytes { .. } => "trailing_bytes",
            ConfirmError::BadTag => "bad_tag",
            ConfirmError::BadName => "bad_name",
            ConfirmError::UnknownFamily(_) => "unknown_family",
            ConfirmError::ReservedBits { .. } => "reserved_bits",
            ConfirmError::ShortKey { .. } => "short_key",
        }
    }
}

/// Checks a shared secret's length (the config and the edge call it up
/// front; [`decode`] refuses everything under a short key).
pub fn check_key(key: &[u8]) -> Result<(), ConfirmError> {
    if key.len() < MIN_KEY_LEN {
        return Err(ConfirmError::ShortKey { len: key.len() });
    }
    Ok(())
}

/// What the sender says about one VRID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entry {
    pub family: Family,
    pub vrid: u8,
    /// The sender is backup for this VRID, hears its master's adverts and is
    /// not contending for the VRID's key.
    pub hears_master: bool,
    /// The sender is a backup of higher priority that would preempt. Reserved
    /// for a handover: carried, not acted on.
    pub wants_preempt: bool,
    /// The sender was master of this VRID and has let its VIPs go (a
    /// shutdown, a priority-0 release, a step down): the receiver need not
    /// wait out the confirmation deadline before it claims.
    pub released: bool,
}

/// One confirmation datagram. Built with [`Datagram::new`], which holds the
/// limits the wire has, so [`encode`] cannot fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    node: String,
    nonce: u64,
    echo: Option<u64>,
    entries: Vec<Entry>,
}

impl Datagram {
    /// A datagram from `node` (1 to [`MAX_NAME_LEN`] bytes) with a fresh
    /// `nonce`, the latest nonce received from the peer as `echo`, and at most
    /// [`MAX_ENTRIES`] entries.
    pub fn new(
        node: impl Into<String>,
        nonce: u64,
        echo: Option<u64>,
        entries: Vec<Entry>,
    ) -> Result<Datagram, ConfirmError> {
        let node = node.into();
        if node.is_empty() || node.len() > MAX_NAME_LEN {
            return Err(ConfirmError::BadLength { len: node.len() });
        }
        if entries.len() > MAX_ENTRIES {
            return Err(ConfirmError::TooManyEntries {
                count: entries.len(),
            });
        }
        Ok(Datagram {
            node,
            nonce,
            echo,
            entries,
        })
    }

    /// The sender's node name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The sender's fresh nonce (echo it back).
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// The latest of this side's nonces the sender had received, if any.
    pub fn echo(&self) -> Option<u64> {
        self.echo
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }

    /// The encoded length, tag included.
    pub fn wire_len(&self) -> usize {
        body_len(self.node.len(), self.entries.len()) + TAG_LEN
    }
}

fn body_len(name_len: usize, count: usize) -> usize {
    HEADER_LEN + name_len + count * ENTRY_LEN
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

/// The datagram's bytes, tagged with `key`. A key shorter than
/// [`MIN_KEY_LEN`] gives bytes that [`decode`] never accepts (check it with
/// [`check_key`] first).
pub fn encode(d: &Datagram, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(d.wire_len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(if d.echo.is_some() { FLAG_ECHO } else { 0 });
    // Datagram::new holds both within their fields' range.
    out.push(d.node.len() as u8);
    out.extend_from_slice(&(d.entries.len() as u16).to_be_bytes());
    out.extend_from_slice(&d.nonce.to_be_bytes());
    out.extend_from_slice(&d.echo.unwrap_or(0).to_be_bytes());
    out.extend_from_slice(d.node.as_bytes());
    for e in &d.entries {
        out.push(match e.family {
            Family::Ipv4 => FAMILY_V4,
            Family::Ipv6 => FAMILY_V6,
        });
        out.push(e.vrid);
        let mut flags = 0;
        if e.hears_master {
            flags |= ENTRY_HEARS_MASTER;
        }
        if e.wants_preempt {
            flags |= ENTRY_WANTS_PREEMPT;
        }
        if e.released {
            flags |= ENTRY_RELEASED;
        }
        out.push(flags);
    }
    let mut m = mac(key);
    m.update(&out);
    out.extend_from_slice(&m.finalize().into_bytes());
    out
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

/// Reads and authenticates one datagram. The magic, version and lengths are
/// checked first (they locate the tag); then the tag, in constant time; only
/// then the fields behind them.
pub fn decode(data: &[u8], key: &[u8]) -> Result<Datagram, ConfirmError> {
    check_key(key)?;
    let len = data.len();
    if len < HEADER_LEN + TAG_LEN {
        return Err(ConfirmError::TooShort {
            len,
            need: HEADER_LEN + TAG_LEN,
        });
    }
    if data[..4] != MAGIC {
        return Err(ConfirmError::BadMagic);
    }
    if data[4] != VERSION {
        return Err(ConfirmError::UnknownVersion(data[4]));
    }
    let name_len = usize::from(data[OFF_NAME_LEN]);
    if name_len == 0 || name_len > MAX_NAME_LEN {
        return Err(ConfirmError::BadLength { len: name_len });
    }
    let count = usize::from(u16::from_be_bytes([data[OFF_COUNT], data[OFF_COUNT + 1]]));
    if count > MAX_ENTRIES {
        return Err(ConfirmError::TooManyEntries { count });
    }
    let body = body_len(name_len, count);
    let need = body + TAG_LEN;
    if len < need {
        return Err(ConfirmError::TooShort { len, need });
    }
    if len > need {
        return Err(ConfirmError::TrailingBytes { extra: len - need });
    }
    let mut m = mac(key);
    m.update(&data[..body]);
    m.verify_slice(&data[body..])
        .map_err(|_| ConfirmError::BadTag)?;

    // Authenticated from here on.
    let flags = data[OFF_FLAGS];
    if flags & !FLAG_ECHO != 0 {
        return Err(ConfirmError::ReservedBits { offset: OFF_FLAGS });
    }
    let nonce = be_u64(data, OFF_NONCE);
    let echo = be_u64(data, OFF_ECHO);
    let echo = if flags & FLAG_ECHO != 0 {
        Some(echo)
    } else if echo == 0 {
        None
    } else {
        return Err(ConfirmError::ReservedBits { offset: OFF_ECHO });
    };
    let node = std::str::from_utf8(&data[HEADER_LEN..HEADER_LEN + name_len])
        .map_err(|_| ConfirmError::BadName)?
        .to_owned();
    let mut entries = Vec::with_capacity(count);
    let first = HEADER_LEN + name_len;
    for (i, e) in data[first..body].chunks_exact(ENTRY_LEN).enumerate() {
        let family = match e[0] {
            FAMILY_V4 => Family::Ipv4,
            FAMILY_V6 => Family::Ipv6,
            other => return Err(ConfirmError::UnknownFamily(other)),
        };
        let flags = e[2];
        if flags & !(ENTRY_HEARS_MASTER | ENTRY_WANTS_PREEMPT | ENTRY_RELEASED) != 0 {
            return Err(ConfirmError::ReservedBits {
                offset: first + i * ENTRY_LEN + 2,
            });
        }
        entries.push(Entry {
            family,
            vrid: e[1],
            hears_master: flags & ENTRY_HEARS_MASTER != 0,
            wants_preempt: flags & ENTRY_WANTS_PREEMPT != 0,
            released: flags & ENTRY_RELEASED != 0,
        });
    }
    Ok(Datagram {
        node,
        nonce,
        echo,
        entries,
    })
}

/// The OS had no randomness for the nonce prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no randomness from the OS for the confirmation nonce prefix: {0}")]
pub struct EntropyError(pub getrandom::Error);

/// This process's own nonces and when each was sent, on its own clock: the
/// last `capacity` of them ([`NONCE_RING`] by default), so memory is bounded.
/// A nonce is the 32-bit boot prefix in the high bits plus a counter; they
/// never repeat within a process.
#[derive(Debug, Clone)]
pub struct Nonces {
    /// The nonce the next call hands out.
    next: u64,
    /// Send instants of the nonces `next - len ..= next - 1`, oldest first.
    sent: VecDeque<Instant>,
    capacity: usize,
}

impl Nonces {
    /// A ring of [`NONCE_RING`] nonces under `boot_prefix` (pure; tests pass a
    /// fixed prefix, the daemon [`Nonces::from_os_rng`]).
    pub fn new(boot_prefix: u32) -> Nonces {
        Nonces::with_capacity(boot_prefix, NONCE_RING)
    }

    /// A ring remembering the last `capacity` nonces (at least one).
    pub fn with_capacity(boot_prefix: u32, capacity: usize) -> Nonces {
        let capacity = capacity.max(1);
        Nonces {
            next: u64::from(boot_prefix) << 32,
            sent: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// A ring under a random boot prefix from the OS (the one call here that
    /// is not pure: it reads the OS's random source once).
    pub fn from_os_rng() -> Result<Nonces, EntropyError> {
        getrandom::u32().map(Nonces::new).map_err(EntropyError)
    }

    /// A fresh nonce, recorded as sent at `now`; the oldest one past the
    /// ring's capacity is forgotten.
    pub fn next(&mut self, now: Instant) -> u64 {
        let nonce = self.next;
        self.next = self.next.wrapping_add(1);
        if self.sent.len() == self.capacity {
            self.sent.pop_front();
        }
        self.sent.push_back(now);
        nonce
    }

    /// When `nonce` was sent, if it is one of the ring's: a confirmation
    /// echoing it was true at or after this instant. `None` for a nonce this
    /// process never sent or has forgotten.
    pub fn sent_at(&self, nonce: u64) -> Option<Instant> {
        let oldest = self.next.wrapping_sub(self.sent.len() as u64);
        let age = nonce.wrapping_sub(oldest);
        usize::try_from(age)
            .ok()
            .and_then(|i| self.sent.get(i))
            .copied()
    }

    /// How many nonces the ring remembers at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &[u8] = b"0123456789abcdef-shared";
    const OTHER_KEY: &[u8] = b"0123456789abcdef-another";

    fn entry(family: Family, vrid: u8, hears_master: bool, wants_preempt: bool) -> Entry {
        Entry {
            family,
            vrid,
            hears_master,
            wants_preempt,
            released: false,
        }
    }

    fn sample() -> Datagram {
        Datagram::new(
            "lb02",
            0x1234_5678_0000_0007,
            Some(0xdead_beef_0000_0002),
            vec![
                entry(Family::Ipv4, 51, true, false),
                entry(Family::Ipv6, 51, false, true),
                entry(Family::Ipv4, 255, true, true),
                entry(Family::Ipv6, 1, false, false),
            ],
        )
        .expect("valid datagram")
    }

    /// `d`'s bytes with `edit` applied to the body and the tag made valid
    /// again: what a sender holding the key could have sent.
    fn resealed(d: &Datagram, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut bytes = encode(d, KEY);
        bytes.truncate(bytes.len() - TAG_LEN);
        edit(&mut bytes);
        let mut m = mac(KEY);
        m.update(&bytes);
        bytes.extend_from_slice(&m.finalize().into_bytes());
        bytes
    }

    #[test]
    fn round_trip() {
        let d = sample();
        let bytes = encode(&d, KEY);
        assert_eq!(bytes.len(), d.wire_len());
        assert_eq!(bytes.len(), HEADER_LEN + 4 + 4 * ENTRY_LEN + TAG_LEN);
        assert_eq!(&bytes[..4], b"SGWC");
        assert_eq!(decode(&bytes, KEY), Ok(d));
    }

    #[test]
    fn round_trip_without_echo_or_entries() {
        let d = Datagram::new("n", 0, None, Vec::new()).expect("valid");
        let bytes = encode(&d, KEY);
        assert_eq!(bytes.len(), HEADER_LEN + 1 + TAG_LEN);
        let back = decode(&bytes, KEY).expect("decodes");
        assert_eq!(back.echo(), None);
        assert_eq!(back, d);
    }

    #[test]
    fn echo_of_zero_is_not_absent() {
        let d = Datagram::new("n", 9, Some(0), Vec::new()).expect("valid");
        assert_eq!(decode(&encode(&d, KEY), KEY).map(|d| d.echo()), Ok(Some(0)));
    }

    #[test]
    fn largest_datagram_round_trips() {
        let entries = (0..MAX_ENTRIES)
            .map(|i| {
                let family = if i % 2 == 0 {
                    Family::Ipv4
                } else {
                    Family::Ipv6
                };
                entry(family, (i % 256) as u8, i % 3 == 0, i % 5 == 0)
            })
            .collect();
        let name = "é".repeat(MAX_NAME_LEN / 2);
        let d = Datagram::new(name, u64::MAX, Some(u64::MAX), entries).expect("valid");
        let bytes = encode(&d, KEY);
        assert_eq!(bytes.len(), MAX_DATAGRAM_LEN);
        assert_eq!(decode(&bytes, KEY), Ok(d));
    }

    #[test]
    fn new_holds_the_wire_limits() {
        assert_eq!(
            Datagram::new("", 1, None, Vec::new()),
            Err(ConfirmError::BadLength { len: 0 })
        );
        assert_eq!(
            Datagram::new("x".repeat(65), 1, None, Vec::new()),
            Err(ConfirmError::BadLength { len: 65 })
        );
        assert!(Datagram::new("x".repeat(64), 1, None, Vec::new()).is_ok());
        let many = vec![entry(Family::Ipv4, 1, true, false); MAX_ENTRIES + 1];
        assert_eq!(
            Datagram::new("n", 1, None, many),
            Err(ConfirmError::TooManyEntries { count: 1025 })
        );
    }

    #[test]
    fn too_short() {
        let bytes = encode(&sample(), KEY);
        assert_eq!(
            decode(&bytes[..10], KEY),
            Err(ConfirmError::TooShort {
                len: 10,
                need: HEADER_LEN + TAG_LEN
            })
        );
        let cut = bytes.len() - 1;
        assert_eq!(
            decode(&bytes[..cut], KEY),
            Err(ConfirmError::TooShort {
                len: cut,
                need: bytes.len()
            })
        );
    }

    #[test]
    fn truncation_at_every_length_is_an_error() {
        let bytes = encode(&sample(), KEY);
        for n in 0..bytes.len() {
            match decode(&bytes[..n], KEY) {
                Err(ConfirmError::TooShort { len, .. }) => assert_eq!(len, n),
                other => panic!("{n} bytes: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_magic() {
        let mut bytes = encode(&sample(), KEY);
        bytes[0] = b'X';
        assert_eq!(decode(&bytes, KEY), Err(ConfirmError::BadMagic));
    }

    #[test]
    fn unknown_version() {
        let mut bytes = encode(&sample(), KEY);
        bytes[4] = 2;
        assert_eq!(decode(&bytes, KEY), Err(ConfirmError::UnknownVersion(2)));
    }

    #[test]
    fn bad_length() {
        for bad in [0u8, 65, 255] {
            let mut bytes = encode(&sample(), KEY);
            bytes[OFF_NAME_LEN] = bad;
            assert_eq!(
                decode(&bytes, KEY),
                Err(ConfirmError::BadLength {
                    len: usize::from(bad)
                })
            );
        }
    }

    #[test]
    fn too_many_entries() {
        let mut bytes = encode(&sample(), KEY);
        bytes[OFF_COUNT..OFF_COUNT + 2].copy_from_slice(&1025u16.to_be_bytes());
        assert_eq!(
            decode(&bytes, KEY),
            Err(ConfirmError::TooManyEntries { count: 1025 })
        );
        bytes[OFF_COUNT..OFF_COUNT + 2].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(
            decode(&bytes, KEY),
            Err(ConfirmError::TooManyEntries { count: 65535 })
        );
    }

    #[test]
    fn trailing_bytes() {
        let mut bytes = encode(&sample(), KEY);
        bytes.extend_from_slice(&[0, 0, 0]);
        assert_eq!(
            decode(&bytes, KEY),
            Err(ConfirmError::TrailingBytes { extra: 3 })
        );
    }

    #[test]
    fn bad_tag() {
        let mut bytes = encode(&sample(), KEY);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(decode(&bytes, KEY), Err(ConfirmError::BadTag));
    }

    #[test]
    fn wrong_key_is_bad_tag() {
        let bytes = encode(&sample(), KEY);
        assert_eq!(decode(&bytes, OTHER_KEY), Err(ConfirmError::BadTag));
    }

    #[test]
    fn short_key_is_refused() {
        let short = &KEY[..MIN_KEY_LEN - 1];
        let bytes = encode(&sample(), short);
        assert_eq!(
            decode(&bytes, short),
            Err(ConfirmError::ShortKey { len: 15 })
        );
        assert_eq!(check_key(short), Err(ConfirmError::ShortKey { len: 15 }));
        assert_eq!(check_key(&KEY[..MIN_KEY_LEN]), Ok(()));
    }

    #[test]
    fn bad_name() {
        let bytes = resealed(&sample(), |b| b[HEADER_LEN] = 0xff);
        assert_eq!(decode(&bytes, KEY), Err(ConfirmError::BadName));
    }

    #[test]
    fn unknown_family() {
        let first = HEADER_LEN + 4;
        let bytes = resealed(&sample(), |b| b[first] = 5);
        assert_eq!(decode(&bytes, KEY), Err(ConfirmError::UnknownFamily(5)));
    }

    #[test]
    fn reserved_bits() {
        let d = sample();
        let flags = resealed(&d, |b| b[OFF_FLAGS] |= 0x80);
        assert_eq!(
            decode(&flags, KEY),
            Err(ConfirmError::ReservedBits { offset: OFF_FLAGS })
        );
        let entry_flags = HEADER_LEN + 4 + ENTRY_LEN + 2;
        let e = resealed(&d, |b| b[entry_flags] |= 0x08);
        assert_eq!(
            decode(&e, KEY),
            Err(ConfirmError::ReservedBits {
                offset: entry_flags
            })
        );
        // An absent echo must be zero.
        let no_echo = Datagram::new("n", 1, None, Vec::new()).expect("valid");
        let stale = resealed(&no_echo, |b| b[OFF_ECHO + 7] = 1);
        assert_eq!(
            decode(&stale, KEY),
            Err(ConfirmError::ReservedBits { offset: OFF_ECHO })
        );
    }

    #[test]
    fn the_tag_is_checked_before_the_fields_behind_the_header() {
        // A bad name, family or flag under a wrong tag is reported as the tag.
        let d = sample();
        for at in [OFF_FLAGS, HEADER_LEN, HEADER_LEN + 4] {
            let mut bytes = encode(&d, KEY);
            bytes[at] = 0xff;
            assert_eq!(decode(&bytes, KEY), Err(ConfirmError::BadTag), "byte {at}");
        }
    }

    #[test]
    fn labels_are_distinct() {
        let all = [
            ConfirmError::TooShort { len: 0, need: 1 },
            ConfirmError::BadMagic,
            ConfirmError::UnknownVersion(0),
            ConfirmError::BadLength { len: 0 },
            ConfirmError::TooManyEntries { count: 0 },
            ConfirmError::TrailingBytes { extra: 0 },
            ConfirmError::BadTag,
            ConfirmError::BadName,
            ConfirmError::UnknownFamily(0),
            ConfirmError::ReservedBits { offset: 0 },
            ConfirmError::ShortKey { len: 0 },
        ];
        let labels: std::collections::BTreeSet<_> = all.iter().map(ConfirmError::label).collect();
        assert_eq!(labels.len(), all.len());
        for e in all {
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn nonces_are_fresh_and_dated() {
        let t0 = Instant::now();
        let mut n = Nonces::new(0xabcd_0123);
        let a = n.next(t0);
        let b = n.next(t0 + Duration::from_millis(500));
        assert_ne!(a, b);
        assert_eq!(a >> 32, 0xabcd_0123);
        assert_eq!(n.sent_at(a), Some(t0));
        assert_eq!(n.sent_at(b), Some(t0 + Duration::from_millis(500)));
        assert_eq!(n.sent_at(b + 1), None, "not sent yet");
        assert_eq!(n.sent_at(a.wrapping_sub(1)), None, "before the first");
        assert_eq!(n.sent_at(0), None);
    }

    #[test]
    fn the_ring_forgets_old_nonces() {
        let t0 = Instant::now();
        let at = |i: u64| t0 + Duration::from_millis(i);
        let mut n = Nonces::new(7);
        assert_eq!(n.capacity(), NONCE_RING);
        let sent: Vec<u64> = (0..200).map(|i| n.next(at(i))).collect();
        for (i, &nonce) in sent.iter().enumerate() {
            let remembered = i >= 200 - NONCE_RING;
            assert_eq!(
                n.sent_at(nonce),
                remembered.then(|| at(i as u64)),
                "nonce {i}"
            );
        }
        let mut one = Nonces::with_capacity(7, 0);
        assert_eq!(one.capacity(), 1);
        let x = one.next(t0);
        let y = one.next(at(1));
        assert_eq!(one.sent_at(x), None);
        assert_eq!(one.sent_at(y), Some(at(1)));
    }

    #[test]
    fn nonces_wrap_without_panic() {
        let t0 = Instant::now();
        let mut n = Nonces::new(u32::MAX);
        n.next = u64::MAX;
        let last = n.next(t0);
        let first = n.next(t0 + Duration::from_millis(1));
        assert_eq!((last, first), (u64::MAX, 0));
        assert_eq!(n.sent_at(u64::MAX), Some(t0));
        assert_eq!(n.sent_at(0), Some(t0 + Duration::from_millis(1)));
        assert_eq!(n.sent_at(1), None);
    }

    #[test]
    fn os_prefixes_differ() {
        // Two draws of 32 random bits agree once in 2^32; three never in practice.
        let a = Nonces::from_os_rng().expect("OS randomness");
        let b = Nonces::from_os_rng().expect("OS randomness");
        let c = Nonces::from_os_rng().expect("OS randomness");
        assert!(a.next != b.next || b.next != c.next);
    }

    fn entries() -> impl Strategy<Value = Vec<Entry>> {
        prop::collection::vec(
            (
                any::<bool>(),
                any::<u8>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            )
                .prop_map(|(v6, vrid, hears_master, wants_preempt, released)| Entry {
                    family: if v6 { Family::Ipv6 } else { Family::Ipv4 },
                    vrid,
                    hears_master,
                    wants_preempt,
                    released,
                }),
            0..40,
        )
    }

    fn datagrams() -> impl Strategy<Value = Datagram> {
        (
            "[a-z0-9é.-]{1,21}",
            any::<u64>(),
            any::<Option<u64>>(),
            entries(),
        )
            .prop_map(|(node, nonce, echo, entries)| {
                Datagram::new(node, nonce, echo, entries).expect("within limits")
            })
    }

    proptest! {
        #[test]
        fn any_datagram_round_trips(d in datagrams()) {
            prop_assert_eq!(decode(&encode(&d, KEY), KEY), Ok(d));
        }

        /// A flipped byte anywhere is refused. Past the length fields (and in
        /// the flags byte) it is always the tag; in the magic, version or
        /// lengths it is the error those checks name, and never acceptance.
        #[test]
        fn a_tampered_byte_is_refused(
            d in datagrams(),
            pos in any::<prop::sample::Index>(),
            mask in 1u8..=255,
        ) {
            let mut bytes = encode(&d, KEY);
            let at = pos.index(bytes.len());
            bytes[at] ^= mask;
            let got = decode(&bytes, KEY);
            match at {
                0..=3 => prop_assert_eq!(got, Err(ConfirmError::BadMagic)),
                4 => prop_assert_eq!(got, Err(ConfirmError::UnknownVersion(bytes[4]))),
                OFF_NAME_LEN | OFF_COUNT | 8 => prop_assert!(
                    matches!(
                        got,
                        Err(ConfirmError::BadLength { .. }
                            | ConfirmError::TooManyEntries { .. }
                            | ConfirmError::TooShort { .. }
                            | ConfirmError::TrailingBytes { .. })
                    ),
                    "length byte {}: {:?}", at, got
                ),
                _ => prop_assert_eq!(got, Err(ConfirmError::BadTag)),
            }
        }

        #[test]
        fn any_other_key_is_a_bad_tag(
            d in datagrams(),
            other in prop::collection::vec(any::<u8>(), MIN_KEY_LEN..64),
        ) {
            prop_assume!(other != KEY);
            prop_assert_eq!(decode(&encode(&d, KEY), &other), Err(ConfirmError::BadTag));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes, KEY);
        }

        /// Fields of any value behind a valid tag (a sender holding the key):
        /// decoding never panics, and what it accepts re-encodes to the same
        /// bytes.
        #[test]
        fn authenticated_fields_never_panic(
            flags in any::<u8>(),
            nonce in any::<u64>(),
            echo in prop_oneof![Just(0u64), any::<u64>()],
            name in prop::collection::vec(any::<u8>(), 1..=MAX_NAME_LEN),
            raw in prop::collection::vec(
                prop_oneof![Just(4u8), Just(6u8), Just(1u8), any::<u8>()], 0..60),
        ) {
            let count = raw.len() / ENTRY_LEN;
            let mut body = MAGIC.to_vec();
            body.push(VERSION);
            body.push(flags);
            body.push(name.len() as u8);
            body.extend_from_slice(&(count as u16).to_be_bytes());
            body.extend_from_slice(&nonce.to_be_bytes());
            body.extend_from_slice(&echo.to_be_bytes());
            body.extend_from_slice(&name);
            body.extend_from_slice(&raw[..count * ENTRY_LEN]);
            let mut m = mac(KEY);
            m.update(&body);
            body.extend_from_slice(&m.finalize().into_bytes());
            match decode(&body, KEY) {
                Ok(d) => prop_assert_eq!(encode(&d, KEY), body),
                Err(e) => prop_assert!(
                    matches!(
                        e,
                        ConfirmError::BadName
                            | ConfirmError::UnknownFamily(_)
                            | ConfirmError::ReservedBits { .. }
                    ),
                    "{:?}", e
                ),
            }
        }
    }
}
