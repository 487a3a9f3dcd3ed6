//! The fuzz entry points of this crate: one function per cargo-fuzz target in
//! `fuzz/` (`vrrp_packet` is the VRRP crate's own), each taking the raw fuzz input. They live here rather than in the fuzz
//! crate so that `tests/fuzz_corpus.rs` replays the committed corpora through exactly
//! the code libFuzzer ran. Each one panics only when a property it checks fails.

use std::path::{Path, PathBuf};

use splitguard_vrrp::wire::{self, ChecksumMode};

use crate::config;
use crate::import::{self, IncludeError, Loader, Options, Source};
use crate::net::ndp::NdpRepr;
use crate::watch::capture::advert_seen;

/// `config`: config text (UTF-8 only, as [`config::load`] reads it). An accepted
/// config has passed every check; a refused one must say why, with positions that
/// exist in the text.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::parse(text, "fuzz.toml") {
        Ok(_) => {}
        Err(e) => {
            let diagnostics = e.diagnostics();
            assert!(!diagnostics.is_empty(), "refused without a diagnostic");
            let lines = text.split('\n').count();
            for d in diagnostics {
                assert!(
                    (1..=lines).contains(&d.line) && d.column >= 1,
                    "diagnostic outside the text: {d}"
                );
                assert!(!d.message.trim().is_empty(), "empty diagnostic: {d}");
            }
            let _ = e.to_string();
        }
    }
}

/// Includes for the fuzzer, from memory: a pattern without wildcards is served the
/// fuzz input itself (as a file of its own, so it can include, and its includes
/// can cycle); a wildcard pattern matches nothing.
struct FuzzLoader {
    text: String,
}

impl Loader for FuzzLoader {
    fn include(&mut self, dir: &Path, pattern: &str) -> Result<Vec<Source>, IncludeError> {
        if pattern.contains(['*', '?', '[']) {
            return Err(IncludeError::NoMatch);
        }
        let path = dir.join(pattern);
        Ok(vec![Source {
            name: path.display().to_string(),
            key: path.clone(),
            dir: path.parent().map(Path::to_owned).unwrap_or_default(),
            text: self.text.clone(),
        }])
    }
}

/// `import_keepalived`: a keepalived.conf (read lossily, as `import_file` does)
/// through the whole import: lexer, parser with includes, conversion, and the
/// validation of the TOML it produced. Every problem must be reported with text.
pub fn import_keepalived(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let root = Source {
        name: "keepalived.conf".to_owned(),
        key: PathBuf::from("/etc/keepalived/keepalived.conf"),
        dir: PathBuf::from("/etc/keepalived"),
        text: text.clone(),
    };
    let options = Options {
        origin: "keepalived.conf".to_owned(),
        hostname: Some("fuzz-node".to_owned()),
    };
    let imported = import::import(&root, &mut FuzzLoader { text }, &options);
    for w in &imported.warnings {
        assert!(!w.message.is_empty(), "empty warning at {}", w.at);
    }
    match imported.result {
        Ok(toml) => assert!(!toml.is_empty(), "an import succeeded with no TOML"),
        Err(e) => assert!(
            !e.to_string().trim().is_empty(),
            "an import failed silently"
        ),
    }
}

/// `ndp`: an ICMPv6 body as a raw socket reads it. A message that parses emits
/// bytes that parse back to the same message, with the link-layer option (when
/// present) as the only option; a refused one says why.
pub fn ndp(data: &[u8]) {
    match NdpRepr::parse(data) {
        Ok(m) => {
            let bytes = m.emit();
            assert!(
                bytes.len() == 24 || bytes.len() == 32,
                "emitted {} bytes",
                bytes.len()
            );
            assert_eq!(NdpRepr::parse(&bytes), Ok(m), "round trip");
        }
        Err(e) => assert!(!e.to_string().is_empty(), "refused silently"),
    }
}

/// `ipv6_advert`: an IPv6 packet from its header on, as the watchdog's capture
/// reads it. The capture agrees with the codec (the IPv6 header, then the advert
/// with the pseudo-header in its checksum): what it takes is a v3 advert from the
/// header's source, and the advert re-emitted behind the same header reads the
/// same; what the codec refuses, it refuses, and the codec says why.
pub fn ipv6_advert(data: &[u8]) {
    let seen = advert_seen(data, false);
    let parsed = wire::parse_ipv6(data)
        .map_err(|e| e.to_string())
        .and_then(|(ip, vrrp)| {
            wire::inspect(&ip, vrrp, ChecksumMode::PseudoHeader)
                .map(|repr| (ip, repr))
                .map_err(|e| e.to_string())
        });
    let (ip, repr) = match parsed {
        Ok(parsed) => parsed,
        Err(why) => {
            assert!(!why.is_empty(), "refused silently");
            // IPv4 goes the capture's other way; not this target's business.
            if data.first().is_some_and(|b| b >> 4 == 6) {
                assert_eq!(seen, None, "the capture took what the codec refused");
            }
            return;
        }
    };
    let Some(seen) = seen else {
        panic!("the capture refused an advert the codec reads: {repr:?}");
    };
    assert_eq!(seen.version, 3, "only v3 travels over IPv6");
    assert_eq!(seen.src, ip.endpoints.src());
    assert_eq!((seen.vrid, seen.priority), (repr.vrid, repr.priority));
    assert_eq!(seen.vips, repr.addrs.iter().collect::<Vec<_>>());

    let vrrp = match wire::build_advert(&repr, &ip.endpoints, ChecksumMode::PseudoHeader) {
        Ok(vrrp) => vrrp,
        Err(e) => panic!("a parsed advert does not re-emit: {e}"),
    };
    let Some(header) = data.get(..40) else {
        panic!("parsed without a 40-byte header");
    };
    let mut again = header.to_vec();
    let len = u16::try_from(vrrp.len()).unwrap_or(u16::MAX).to_be_bytes();
    again[4..6].copy_from_slice(&len);
    again.extend_from_slice(&vrrp);
    assert_eq!(
        advert_seen(&again, false),
        Some(seen),
        "the re-emitted advert reads differently"
    );
}

/// The key `witness_confirm` seals and checks with (the corpus's sealed seeds
/// use it too).
pub const WITNESS_KEY: &[u8] = b"splitguard-fuzz-witness-key";

/// `witness_confirm`: a datagram on the peer confirm path. First byte even:
/// the rest is decoded as received, and anything accepted must encode back to
/// the same bytes. Odd: the rest is read as a datagram's fields (name length,
/// name, nonce, echo, entries), which must round-trip if the limits accept them.
/// A refusal must say why.
pub fn witness_confirm(data: &[u8]) {
    use splitguard_arbiter::witness::confirm::{self, Datagram, Entry, Family};
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        match confirm::decode(rest, WITNESS_KEY) {
            Ok(d) => assert_eq!(confirm::encode(&d, WITNESS_KEY), rest, "round trip"),
            Err(e) => assert!(!e.to_string().is_empty() && !e.label().is_empty()),
        }
        return;
    }
    let Some((&n, rest)) = rest.split_first() else {
        return;
    };
    let n = usize::from(n).min(rest.len());
    let (name, rest) = rest.split_at(n);
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        for (d, s) in w.iter_mut().zip(b) {
            *d = *s;
        }
        u64::from_be_bytes(w)
    };
    let nonce = word(rest);
    let echo = rest.get(8..).map(word).filter(|e| e % 2 == 0);
    let entries = rest
        .get(16..)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|c| Entry {
            family: if c[0] & 1 == 0 {
                Family::Ipv4
            } else {
                Family::Ipv6
            },
            vrid: c[1],
            hears_master: c[0] & 2 != 0,
            wants_preempt: c[0] & 4 != 0,
            released: c[0] & 8 != 0,
        })
        .collect();
    let Ok(d) = Datagram::new(String::from_utf8_lossy(name), nonce, echo, entries) else {
        return;
    };
    let bytes = confirm::encode(&d, WITNESS_KEY);
    assert_eq!(
        confirm::decode(&bytes, WITNESS_KEY).as_ref(),
        Ok(&d),
        "round trip"
    );
}
