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

/// The distinct target link-layer addresses in `ndisc6 -m` output.
pub fn parse_ndisc6_macs(output: &str) -> BTreeSet<String> {
    output
        .lines()
        .filter_map(|l| {
            let mac = l.trim().strip_prefix("Target link-layer address:")?.trim();
            (mac.len() == 17 && mac.bytes().filter(|b| *b == b':').count() == 5)
                .then(|| mac.to_ascii_lowercase())
        })
        .collect()
}

/// Who answered each ARP request of a watching arping: one set of MACs per request
/// sent, so a scenario can count dual-owner and zero-owner samples over a window.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnerSamples {
    pub per_request: Vec<BTreeSet<String>>,
}

impl OwnerSamples {
    /// Parses arping 2.x output: reply lines carry `index=N` (the request they
    /// answer), and the summary says how many requests went out.
    pub fn parse(output: &str) -> OwnerSamples {
        let sent = output
            .lines()
            .find_map(|l| {
                l.split(" packets transmitted")
                    .next()
                    .filter(|_| l.contains(" packets transmitted"))
            })
            .and_then(|n| n.trim().parse::<usize>().ok());
        let mut replies: Vec<(usize, String)> = Vec::new();
        for line in output.lines() {
            let macs = parse_arping_macs(line);
            let index = line
                .split("index=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse::<usize>().ok());
            if let (Some(mac), Some(index)) = (macs.into_iter().next(), index) {
                replies.push((index, mac));
            }
        }
        let seen = replies.iter().map(|r| r.0 + 1).max().unwrap_or(0);
        let mut per_request = vec![BTreeSet::new(); sent.unwrap_or(seen).max(seen)];
        for (index, mac) in replies {
            if let Some(set) = per_request.get_mut(index) {
                set.insert(mac);
            }
        }
        OwnerSamples { per_request }
    }

    /// Requests answered by two or more MACs: split brain as a neighbour sees it.
    pub fn dual(&self) -> usize {
        self.per_request.iter().filter(|s| s.len() >= 2).count()
    }

    /// Requests nobody answered: the VIP was down.
    pub fn empty(&self) -> usize {
        self.per_request.iter().filter(|s| s.is_empty()).count()
    }

    /// Every MAC that answered at some point.
    pub fn all_owners(&self) -> BTreeSet<String> {
        self.per_request.iter().flatten().cloned().collect()
    }
}

impl Lab {
    /// Starts watching who answers ARP for `vip` from `host`: `count` requests,
    /// one every `every`, bounded by count and by a deadline. Read the result with
    /// [`OwnerSamples::parse`] on the process log once it has exited.
    pub fn watch_owners(
        &self,
        host: &str,
        vip: &str,
        every: Duration,
        count: u32,
    ) -> Result<super::LabProcess, LabError> {
        let iface = self.host(host)?.iface.clone();
        let wait = format!("{:.3}", every.as_secs_f64());
        let count_s = count.to_string();
        let deadline = (every * count + Duration::from_secs(3))
            .as_secs()
            .to_string();
        self.spawn(
            host,
            &format!("owners-{host}-{vip}"),
            &[
                "arping", "-i", &iface, "-W", &wait, "-c", &count_s, "-w", &deadline, vip,
            ],
        )
    }

    /// The distinct MACs that answer for `vip`, asked from `host`: ARP with
    /// arping (two requests, at most 2 s) for an IPv4 VIP, neighbour
    /// solicitation with ndisc6 (two, 400 ms apart, every answer kept) for an
    /// IPv6 one. Empty: nobody holds it.
    pub fn vip_owners(&self, host: &str, vip: &str) -> Result<BTreeSet<String>, LabError> {
        let iface = self.host(host)?.iface.clone();
        let (tool, args): (&str, Vec<&str>) = if vip.contains(':') {
            (
                "ndisc6",
                vec!["-m", "-n", "-r", "2", "-w", "400", vip, &iface],
            )
        } else {
            ("arping", vec!["-c", "2", "-w", "2", "-i", &iface, vip])
        };
        let out = self
            .command(host, tool)?
            .args(args)
            .output()
            .map_err(|source| LabError::Spawn {
                command: format!("{tool} {vip}"),
                source,
            })?;
        // A non-zero exit means "no reply", which is an answer, not an error.
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(if vip.contains(':') {
            parse_ndisc6_macs(&text)
        } else {
            parse_arping_macs(&text)
        })
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
    fn ndisc6_output_is_parsed_into_distinct_macs() {
        let out = "Soliciting 2001:db8::3 (2001:db8::3) on eth0...\n\
                   Target link-layer address: 02:00:00:00:00:05\n from 2001:db8::3\n\
                   Target link-layer address: 02:00:00:00:00:0A\n from 2001:db8::3\n\
                   Target link-layer address: 02:00:00:00:00:05\n from 2001:db8::3\n";
        assert_eq!(
            parse_ndisc6_macs(out).into_iter().collect::<Vec<_>>(),
            vec!["02:00:00:00:00:05", "02:00:00:00:00:0a"]
        );
        assert!(parse_ndisc6_macs("Soliciting 2001:db8::3\nTimed out.\nNo response.\n").is_empty());
    }

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

    #[test]
    fn owner_samples_count_dual_and_empty_requests() {
        let out = "ARPING 192.0.2.3\n\
            42 bytes from 02:00:00:00:00:05 (192.0.2.3): index=0 time=8.9 usec\n\
            Timeout\n\
            42 bytes from 02:00:00:00:00:05 (192.0.2.3): index=2 time=9.1 usec\n\
            42 bytes from 02:00:00:00:00:06 (192.0.2.3): index=2 time=9.3 usec\n\
            \n--- 192.0.2.3 statistics ---\n\
            4 packets transmitted, 3 packets received,  25% unanswered (0 extra)\n";
        let s = OwnerSamples::parse(out);
        assert_eq!(s.per_request.len(), 4, "sent, not just answered");
        assert_eq!(s.dual(), 1);
        assert_eq!(s.empty(), 2);
        assert_eq!(s.all_owners().len(), 2);
    }
}
