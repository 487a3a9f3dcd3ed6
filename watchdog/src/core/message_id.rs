//! The Message-IDs the mail channel mints and the reply handler reads back:
//! `<sg.{incident}.{notification}.{channel}@splitguard.invalid>`, stable per
//! notification and channel (see the mail channel's module head). Pure.

use crate::core::alert::Alert;

/// The right-hand side of every Message-ID we mint (RFC 2606: never a real host).
pub const MESSAGE_ID_DOMAIN: &str = "splitguard.invalid";

/// One Message-ID part: `[A-Za-z0-9_+=-]`, anything else as `_`.
fn id_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '=') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The Message-ID of notification number `notification` of incident `incident`
/// on channel `channel`, angle brackets included.
pub fn message_id_for(incident: &str, notification: u32, channel: &str) -> String {
    format!(
        "<sg.{}.{notification}.{}@{MESSAGE_ID_DOMAIN}>",
        id_part(incident),
        id_part(channel)
    )
}

/// This notification's Message-ID on `channel`.
pub fn message_id(alert: &Alert, channel: &str) -> String {
    message_id_for(&alert.id, alert.notification, channel)
}

/// The Message-ID the rest of an incident's mails on `channel` point at: its
/// first page's.
pub fn thread_root(incident: &str, channel: &str) -> String {
    message_id_for(incident, 1, channel)
}

/// Whether `msg_id` (a Message-ID, In-Reply-To or References entry, brackets
/// optional) is one of ours for `incident`, on any channel and notification.
/// For the reply handler, which compares a reply's references with the open
/// incidents.
pub fn refers_to_incident(msg_id: &str, incident: &str) -> bool {
    let inner = msg_id.trim().trim_start_matches('<').trim_end_matches('>');
    let Some(local) = inner
        .strip_suffix(MESSAGE_ID_DOMAIN)
        .and_then(|l| l.strip_suffix('@'))
    else {
        return false;
    };
    let Some(rest) = local.strip_prefix("sg.") else {
        return false;
    };
    // `{id}.{n}.{channel}`: the id part never contains a dot.
    let mut parts = rest.rsplitn(3, '.');
    let (Some(_channel), Some(n), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    n.parse::<u32>().is_ok() && id == id_part(incident)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_parts_are_reduced_to_safe_characters() {
        assert_eq!(
            message_id_for("lb02.example.com-7", 2, "mail ops"),
            "<sg.lb02_example_com-7.2.mail_ops@splitguard.invalid>"
        );
    }

    #[test]
    fn references_are_matched_back_to_incidents() {
        let id = message_id_for("lb02-1", 4, "mail0");
        assert!(refers_to_incident(&id, "lb02-1"));
        assert!(refers_to_incident(id.trim_matches(['<', '>']), "lb02-1"));
        assert!(!refers_to_incident(&id, "lb02-11"));
        assert!(!refers_to_incident(&id, "lb02"));
        assert!(refers_to_incident(
            &thread_root("lb02.example-3", "m"),
            "lb02.example-3"
        ));
        assert!(!refers_to_incident(
            "<sg.lb02-1.x.mail0@splitguard.invalid>",
            "lb02-1"
        ));
        assert!(!refers_to_incident(
            "<lb02-1.1.mail0@splitguard.invalid>",
            "lb02-1"
        ));
        assert!(!refers_to_incident(
            "<sg.lb02-1.1.mail0@example.com>",
            "lb02-1"
        ));
    }
}
