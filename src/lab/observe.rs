//! Watching a lab from the outside, the way an operator's tools would: who answers
//! ARP for a VIP (arping from a host, typically the gateway), and bounded waits.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::netns::{Lab, LabError};

/// Polls `probe` until it returns Some, or `within` passes (then None). The poll
/// interval is fixed and the loop bounded by time, so it can never spin forever.
pub fn wait_for<T>(within: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Parses arping 2.x lines "42 bytes from aa:bb:cc:dd:ee:ff (192.0.2.3): ...".
pub fn parse_arping_macs(output: &str) -> BTreeSet<String> {
    output
        .lines()
        .filter_map(|l| {
            let rest = l.split(" bytes from ").nth(1)?;
            let mac = rest.split_whitespace().next()?;
            (mac.len() == 17 && mac.bytes().filter(|b| *b == b':').count() == 5)
                .then(|| mac.to_ascii_lowercase())
        })
        .collect()
}

impl Lab {
    /// The distinct MACs that answer ARP for `vip`, asked from `host` with arping
    /// (two requests, at most 2 s). Empty: nobody holds it.
    pub fn vip_owners(&self, host: &str, vip: &str) -> Result<BTreeSet<String>, LabError> {
        let iface = self.host(host)?.iface.clone();
        let out = self
            .command(host, "arping")?
            .args(["-c", "2", "-w", "2", "-i", &iface, vip])
            .output()
            .map_err(|source| LabError::Spawn {
                command: format!("arping {vip}"),
                source,
            })?;
        // Exit 1 means "no reply", which is an answer, not an error.
        Ok(parse_arping_macs(&String::from_utf8_lossy(&out.stdout)))
    }

    /// The MAC of `host`'s lab interface.
    pub fn mac_of(&self, host: &str) -> Result<String, LabError> {
        let h = self.host(host)?;
        let path = format!("/sys/class/net/{}/address", h.iface);
        let out = self.run(host, &["cat", &path])?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .trim()
            .to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arping_output_is_parsed_into_distinct_macs() {
        let out = "ARPING 192.0.2.3\n\
            42 bytes from 86:88:82:4E:F6:EA (192.0.2.3): index=0 time=8.937 usec\n\
            42 bytes from 02:00:00:00:00:06 (192.0.2.3): index=0 time=9.1 usec\n\
            42 bytes from 86:88:82:4e:f6:ea (192.0.2.3): index=1 time=6.723 usec\n\n\
            --- 192.0.2.3 statistics ---\n";
        let macs = parse_arping_macs(out);
        assert_eq!(macs.len(), 2);
        assert!(macs.contains("86:88:82:4e:f6:ea"));
        assert!(parse_arping_macs("Timeout\nTimeout\n").is_empty());
    }
}
