//! The fuzz entry points of this crate: one function per cargo-fuzz target in
//! `fuzz/`, each taking the raw fuzz input. They live here rather than in the fuzz
//! crate so that `tests/fuzz_corpus.rs` replays the committed corpora through exactly
//! the code libFuzzer ran. Each one panics only when a property it checks fails.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use crate::config;
use crate::import::{self, IncludeError, Loader, Options, Source};
use crate::vrrp::wire::{
    self, AdvertRepr, Auth, ChecksumMode, Endpoints, Expect, IpInfo, Packet, build_advert,
};

/// `vrrp_packet`: one VRRP message in one receive context. The first byte picks the
/// checksum mode (bit 0) and the context ((byte >> 1) % 3): 0, the rest is a whole
/// IPv4 datagram as the raw socket delivers it; 1, 8 bytes of IPv4 source and
/// destination then the VRRP message; 2, 32 bytes of IPv6 source and destination
/// then the message. Checks that what parses re-emits to bytes that parse back to
/// the same advert, and that an advert is accepted by an instance configured as it
/// says (PASS and no auth only; AH and unknown types are always refused).
pub fn vrrp_packet(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mode = if selector & 1 == 0 {
        ChecksumMode::PseudoHeader
    } else {
        ChecksumMode::NoPseudoHeader
    };
    match (selector >> 1) % 3 {
        0 => {
            if let Ok((ip, vrrp)) = wire::parse_ipv4(rest) {
                vrrp_in_context(&ip, vrrp, mode);
            }
            // The daemon's own entry for datagrams, with some instance.
            let expect = Expect {
                version: crate::vrrp::Version::V2,
                vrid: 51,
                auth: wire::pass_key(b"1111").ok(),
                interval: std::time::Duration::from_secs(1),
                vips: &[IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3))],
                checksum_mode: mode,
                check_ttl: true,
            };
            let _ = wire::validate_ipv4_datagram(rest, &expect).map_err(|e| e.to_string());
        }
        1 => {
            let (Some(addrs), Some(vrrp)) = (rest.get(..8), rest.get(8..)) else {
                return;
            };
            let mut src = [0u8; 4];
            let mut dst = [0u8; 4];
            src.copy_from_slice(&addrs[..4]);
            dst.copy_from_slice(&addrs[4..]);
            let endpoints = Endpoints::V4 {
                src: Ipv4Addr::from(src),
                dst: Ipv4Addr::from(dst),
            };
            vrrp_in_context(
                &IpInfo {
                    endpoints,
                    ttl: wire::TTL,
                },
                vrrp,
                mode,
            );
        }
        _ => {
            let (Some(addrs), Some(vrrp)) = (rest.get(..32), rest.get(32..)) else {
                return;
            };
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src.copy_from_slice(&addrs[..16]);
            dst.copy_from_slice(&addrs[16..]);
            let ip = IpInfo::ipv6(Ipv6Addr::from(src), Ipv6Addr::from(dst), wire::TTL);
            vrrp_in_context(&ip, vrrp, mode);
        }
    }
}

fn vrrp_in_context(ip: &IpInfo, vrrp: &[u8], mode: ChecksumMode) {
    let family = ip.endpoints.family();
    // Every accessor on an unchecked view, as the watchdog's describers use them.
    let view = Packet::new_unchecked(vrrp, family);
    let _ = (
        view.version(),
        view.msg_type(),
        view.vrid(),
        view.priority(),
    );
    let _ = (view.addr_count(), view.auth_type(), view.interval_raw());
    let _ = (view.checksum(), view.auth_data(), view.addresses().count());
    let unverified = AdvertRepr::parse_unverified(&view);

    let repr = match wire::inspect(ip, vrrp, mode) {
        Ok(repr) => repr,
        Err(e) => {
            let _ = (e.to_string(), e.reason());
            return;
        }
    };
    assert_eq!(
        unverified.as_ref(),
        Ok(&repr),
        "checksum changed the values"
    );
    let bytes = match build_advert(&repr, &ip.endpoints, mode) {
        Ok(bytes) => bytes,
        Err(e) => panic!("a parsed advert does not re-emit: {e}"),
    };
    assert_eq!(
        wire::inspect(ip, &bytes, mode).as_ref(),
        Ok(&repr),
        "the re-emitted advert parses differently"
    );

    let vips: Vec<IpAddr> = repr.addrs.iter().collect();
    let expect = Expect {
        version: repr.version,
        vrid: repr.vrid,
        auth: match repr.auth {
            Auth::Pass(key) => Some(key),
            _ => None,
        },
        interval: repr.interval(),
        vips: &vips,
        checksum_mode: mode,
        check_ttl: true,
    };
    let at_ttl = IpInfo {
        ttl: wire::TTL,
        ..*ip
    };
    let validated = wire::validate(&at_ttl, vrrp, &expect);
    match repr.auth {
        Auth::Ah | Auth::Other(_) => assert!(
            matches!(validated, Err(wire::Reject::AuthType { .. })),
            "AH or an unknown auth type accepted: {validated:?}"
        ),
        Auth::None | Auth::Pass(_) => assert_eq!(
            validated.as_ref(),
            Ok(&repr),
            "an advert is refused by an instance configured as it says"
        ),
    }
}

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
