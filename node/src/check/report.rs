//! What `splitguard check` prints, pure: one integer for Zabbix, a plugin line
//! with perfdata and an exit code for Nagios/Icinga, JSON for scripts. An answer
//! it cannot give is UNKNOWN with the reason (Zabbix: `ZBX_NOTSUPPORTED`), never a
//! wrong number.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::Serialize;

/// Nagios plugin exit codes.
pub const OK: u8 = 0;
pub const WARNING: u8 = 1;
pub const CRITICAL: u8 = 2;
pub const UNKNOWN: u8 = 3;

/// Who answers for a VIP, as seen from this node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VipReport {
    pub vip: IpAddr,
    /// The distinct MACs holding it (this node's own when the VIP is here).
    pub owners: BTreeSet<String>,
    /// The VIP is on one of this node's interfaces.
    pub local: bool,
    /// Round trip of the first ARP or neighbour advertisement answer, when
    /// one came.
    pub rtt_ms: Option<f64>,
    /// Why no answer could be given (then `owners` means nothing).
    pub unknown: Option<String>,
}

/// One instance's state, from the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateReport {
    pub instance: String,
    pub state: Option<String>,
    pub unknown: Option<String>,
}

/// keepalived's numbers: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT.
pub fn state_number(state: &str) -> Option<u8> {
    match state {
        "INIT" | "STOP" => Some(0),
        "BACKUP" => Some(1),
        "MASTER" => Some(2),
        "FAULT" => Some(3),
        _ => None,
    }
}

/// A line for Zabbix: the value, or `ZBX_NOTSUPPORTED: reason`.
pub fn zabbix_vip(r: &VipReport) -> String {
    match &r.unknown {
        Some(why) => format!("ZBX_NOTSUPPORTED: {why}"),
        None => r.owners.len().to_string(),
    }
}

/// The Nagios line and exit code: one owner OK, none CRITICAL (the VIP is
/// down), two or more CRITICAL (split brain).
pub fn nagios_vip(r: &VipReport) -> (String, u8) {
    if let Some(why) = &r.unknown {
        return (
            format!("SPLITGUARD UNKNOWN - VIP {}: {why}", r.vip),
            UNKNOWN,
        );
    }
    let n = r.owners.len();
    let macs: Vec<&str> = r.owners.iter().map(String::as_str).collect();
    let (word, code, text) = match n {
        0 => (
            "CRITICAL",
            CRITICAL,
            format!("nobody answers for VIP {}", r.vip),
        ),
        1 => (
            "OK",
            OK,
            format!(
                "VIP {} held by {}{}",
                r.vip,
                macs.join(""),
                if r.local { " (this node)" } else { "" }
            ),
        ),
        _ => (
            "CRITICAL",
            CRITICAL,
            format!("split brain: VIP {} answered by {}", r.vip, macs.join(", ")),
        ),
    };
    let rtt = r
        .rtt_ms
        .map(|ms| format!(" rtt={ms:.3}ms"))
        .unwrap_or_default();
    (
        format!("SPLITGUARD {word} - {text} | owners={n};;2{rtt}"),
        code,
    )
}

pub fn zabbix_state(r: &StateReport) -> String {
    match (&r.unknown, r.state.as_deref().and_then(state_number)) {
        (None, Some(n)) => n.to_string(),
        (Some(why), _) => format!("ZBX_NOTSUPPORTED: {why}"),
        (None, None) => format!(
            "ZBX_NOTSUPPORTED: instance {} has an unknown state",
            r.instance
        ),
    }
}

pub fn nagios_state(r: &StateReport) -> (String, u8) {
    if let Some(why) = &r.unknown {
        return (format!("SPLITGUARD UNKNOWN - {why}"), UNKNOWN);
    }
    let state = r.state.as_deref().unwrap_or("?");
    let code = match state {
        "MASTER" | "BACKUP" => OK,
        "INIT" | "STOP" => WARNING,
        "FAULT" => CRITICAL,
        _ => UNKNOWN,
    };
    let word = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][usize::from(code)];
    let n = state_number(state)
        .map(|n| format!(" | state={n}"))
        .unwrap_or_default();
    (
        format!("SPLITGUARD {word} - instance {} is {state}{n}", r.instance),
        code,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vip(owners: &[&str], unknown: Option<&str>) -> VipReport {
        VipReport {
            vip: "192.0.2.3".parse().unwrap(),
            owners: owners.iter().map(|s| s.to_string()).collect(),
            local: false,
            rtt_ms: Some(0.25),
            unknown: unknown.map(str::to_owned),
        }
    }

    #[test]
    fn zabbix_is_one_integer_or_not_supported() {
        assert_eq!(zabbix_vip(&vip(&["a"], None)), "1");
        assert_eq!(zabbix_vip(&vip(&[], None)), "0");
        assert_eq!(zabbix_vip(&vip(&["a", "b"], None)), "2");
        assert_eq!(
            zabbix_vip(&vip(&["a"], Some("no CAP_NET_RAW"))),
            "ZBX_NOTSUPPORTED: no CAP_NET_RAW"
        );
    }

    #[test]
    fn nagios_lines_and_codes() {
        assert_eq!(
            nagios_vip(&vip(&["02:00:00:00:00:05"], None)),
            (
                "SPLITGUARD OK - VIP 192.0.2.3 held by 02:00:00:00:00:05 | owners=1;;2 rtt=0.250ms"
                    .into(),
                OK
            )
        );
        assert_eq!(nagios_vip(&vip(&[], None)).1, CRITICAL);
        let (line, code) = nagios_vip(&vip(&["a", "b"], None));
        assert_eq!(code, CRITICAL);
        assert!(
            line.starts_with("SPLITGUARD CRITICAL - split brain"),
            "{line}"
        );
        assert!(line.contains("owners=2;;2"), "{line}");
        assert_eq!(nagios_vip(&vip(&[], Some("why"))).1, UNKNOWN);
    }

    #[test]
    fn states_use_keepalived_numbers() {
        let r = |s: &str| StateReport {
            instance: "VI_1".into(),
            state: Some(s.into()),
            unknown: None,
        };
        assert_eq!(zabbix_state(&r("MASTER")), "2");
        assert_eq!(zabbix_state(&r("BACKUP")), "1");
        assert_eq!(zabbix_state(&r("FAULT")), "3");
        assert_eq!(zabbix_state(&r("INIT")), "0");
        assert_eq!(nagios_state(&r("FAULT")).1, CRITICAL);
        assert_eq!(
            nagios_state(&r("MASTER")).0,
            "SPLITGUARD OK - instance VI_1 is MASTER | state=2"
        );
    }
}
