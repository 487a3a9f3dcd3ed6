//! Reading the spanned TOML document into the raw section shapes. Each section, and
//! each element of an array of tables, is deserialized on its own from its spanned
//! value, so one bad `[[instance]]` does not hide an unknown key in `[arbiter]`, and
//! every serde error keeps the byte span of the value it is about. Channels are
//! dispatched on `type` (and SMS on `provider`) by hand for the same reason: serde's
//! internally tagged enums buffer the table and lose the spans.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::locate::KeyPath;
use super::schema::{
    Alerts, HttpSms, Pagerduty, RawAlertmanager, RawArbiter, RawInstance, RawMail, RawTop,
    RawTrackScript, RawWitness, Reply, TwilioSms, Watch, WatchActions, Webhook,
};

/// A problem found while reading, before it is given a line and column.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub span: Range<usize>,
    /// None: work the key out from the span.
    pub path: Option<KeyPath>,
    /// A required key that is absent: the span is its table's, the path gets it.
    pub missing: Option<String>,
    pub message: String,
}

/// A `[[channel]]` as read, before validation.
#[derive(Debug)]
pub(crate) enum RawChannel {
    Webhook(Webhook),
    Mail(RawMail),
    Twilio(TwilioSms),
    HttpSms(HttpSms),
    Alertmanager(RawAlertmanager),
    Pagerduty(Pagerduty),
}

/// Every section, read.
#[derive(Debug)]
pub(crate) struct RawConfig {
    pub top: RawTop,
    pub instances: Vec<RawInstance>,
    pub track_scripts: Vec<RawTrackScript>,
    pub arbiter: RawArbiter,
    pub channels: Vec<RawChannel>,
    pub reply: Option<Reply>,
    pub watches: Vec<Watch>,
    pub watch_actions: WatchActions,
    pub alerts: Alerts,
    pub witness: Option<RawWitness>,
    pub fences: Vec<super::fence::RawFence>,
}

/// Top-level keys other than the sections: kept in step with [`RawTop`].
const TOP_SCALARS: &[&str] = &[
    "node",
    "state_dir",
    "control_socket",
    "control_socket_group",
    "events_file",
    "metrics_listen",
    "metrics_tls_cert",
    "metrics_tls_key",
    "secret_file_mode",
];
const SECTIONS: &[&str] = &[
    "instance",
    "track_script",
    "arbiter",
    "channel",
    "reply",
    "watch",
    "watch_actions",
    "alerts",
    "witness",
    "fence",
];
const CHANNEL_TYPES: &str = "\"webhook\", \"mail\", \"sms\", \"alertmanager\", \"pagerduty\"";
const SMS_PROVIDERS: &str = "\"twilio\", \"http\"";

/// Reads every section; returns None if anything could not be read, with the
/// reasons in `found`.
pub(crate) fn read(doc: Spanned<DeTable<'_>>, found: &mut Vec<Found>) -> Option<RawConfig> {
    let errors_before = found.len();
    let root_span = doc.span();
    let mut root = doc.into_inner();

    let mut take = |name: &str| root.remove(name);
    let instance = take("instance");
    let track_script = take("track_script");
    let arbiter = take("arbiter");
    let channel = take("channel");
    let reply = take("reply");
    let watch = take("watch");
    let watch_actions = take("watch_actions");
    let alerts = take("alerts");
    let witness = take("witness");
    let fence = take("fence");

    // Unknown top-level keys are reported here, with the full list of what the top
    // level takes; serde would list only the scalars.
    let unknown: Vec<String> = root
        .keys()
        .filter(|k| !TOP_SCALARS.contains(&k.get_ref().as_ref()))
        .map(|k| k.get_ref().to_string())
        .collect();
    for name in unknown {
        if let Some((key, _)) = root.remove_entry(name.as_str()) {
            let expected: Vec<String> = TOP_SCALARS
                .iter()
                .chain(SECTIONS)
                .map(|k| format!("`{k}`"))
                .collect();
            found.push(Found {
                span: key.span(),
                path: Some(KeyPath::root().key(&name)),
                missing: None,
                message: format!(
                    "unknown key `{name}`; expected one of {}",
                    expected.join(", ")
                ),
            });
        }
    }

    let top = typed::<RawTop>(Spanned::new(root_span, DeValue::Table(root)), found);
    let instances = array_of("instance", instance, found, typed::<RawInstance>);
    let track_scripts = array_of("track_script", track_script, found, typed::<RawTrackScript>);
    let arbiter = match arbiter {
        Some(v) => table::<RawArbiter>("arbiter", v, found),
        None => Some(RawArbiter::default()),
    };
    let channels = array_of("channel", channel, found, read_channel);
    let reply = match reply {
        Some(v) => table::<Reply>("reply", v, found).map(Some),
        None => Some(None),
    };
    let watches = array_of("watch", watch, found, typed::<Watch>);
    let watch_actions = match watch_actions {
        Some(v) => table::<WatchActions>("watch_actions", v, found),
        None => Some(WatchActions::default()),
    };
    let alerts = match alerts {
        Some(v) => table::<Alerts>("alerts", v, found),
        None => Some(Alerts::default()),
    };
    let witness = match witness {
        Some(v) => table::<RawWitness>("witness", v, found).map(Some),
        None => Some(None),
    };

    let fences = array_of("fence", fence, found, typed::<super::fence::RawFence>);

    if found.len() > errors_before {
        return None;
    }
    Some(RawConfig {
        top: top?,
        instances: instances?,
        track_scripts: track_scripts?,
        arbiter: arbiter?,
        channels: channels?,
        reply: reply?,
        watches: watches?,
        watch_actions: watch_actions?,
        alerts: alerts?,
        witness: witness?,
        fences: fences?,
    })
}

/// Deserializes one spanned value, recording the error (with its span) if it fails.
fn typed<'de, T: Deserialize<'de>>(
    value: Spanned<DeValue<'de>>,
    found: &mut Vec<Found>,
) -> Option<T> {
    match T::deserialize(ValueDeserializer::from(value)) {
        Ok(v) => Some(v),
        Err(e) => {
            found.push(from_toml_error(&e));
            None
        }
    }
}

/// A single-table section (`[name]`). Checked before serde sees it: a derived
/// struct would also accept an array, and then complain about its first element.
fn table<'de, T: Deserialize<'de>>(
    name: &str,
    value: Spanned<DeValue<'de>>,
    found: &mut Vec<Found>,
) -> Option<T> {
    if value.get_ref().is_table() {
        return typed(value, found);
    }
    let what = if matches!(value.get_ref(), DeValue::Array(a) if a.iter().all(|v| v.get_ref().is_table()))
    {
        "an array of tables; use `[NAME]`, not `[[NAME]]`".replace("NAME", name)
    } else {
        value.get_ref().type_str().to_owned()
    };
    found.push(Found {
        span: value.span(),
        path: Some(KeyPath::root().key(name)),
        missing: None,
        message: format!("expected a table (`[{name}]`), found {what}"),
    });
    None
}

/// A serde error from the toml crate, with serde's wording turned into ours.
pub(crate) fn from_toml_error(e: &toml::de::Error) -> Found {
    let span = e.span().unwrap_or(0..0);
    let message = e.message().trim();
    if let Some(field) = backticked_after(message, "missing field ") {
        // The span is the table's; the path gets the key that is missing.
        return Found {
            span,
            path: None,
            missing: Some(field.to_owned()),
            message: format!("missing required key `{field}`"),
        };
    }
    let mut message = match message.strip_prefix("unknown field ") {
        Some(rest) => format!(
            "unknown key {}",
            rest.replacen(", expected", "; expected", 1)
        ),
        None => message.to_owned(),
    };
    // serde names Rust types; say what to write instead.
    for (rust, words) in [
        ("expected i64", "expected an integer"),
        ("expected u8", "expected an integer 0-255"),
        ("expected u16", "expected an integer 0-65535"),
        ("expected u32", "expected an integer 0-4294967295"),
    ] {
        if let Some(head) = message.strip_suffix(rust) {
            message = format!("{head}{words}");
            break;
        }
    }
    if let Some((head, _)) = message.split_once("expected struct ") {
        message = format!("{head}expected a table");
    }
    message = message.replace("expected a sequence", "expected an array");
    Found {
        span,
        path: None,
        missing: None,
        message,
    }
}

/// `name` from "<prefix>`name`...".
fn backticked_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split_once('`').map(|(name, _)| name)
}

/// An array of tables (`[[name]]`), each element read on its own.
fn array_of<'de, T>(
    name: &str,
    value: Option<Spanned<DeValue<'de>>>,
    found: &mut Vec<Found>,
    read_one: impl Fn(Spanned<DeValue<'de>>, &mut Vec<Found>) -> Option<T>,
) -> Option<Vec<T>> {
    let Some(value) = value else {
        return Some(Vec::new());
    };
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            let mut ok = true;
            for item in items.iter() {
                match read_one(item.clone(), found) {
                    Some(v) => out.push(v),
                    None => ok = false,
                }
            }
            ok.then_some(out)
        }
        other => {
            found.push(Found {
                span,
                path: Some(KeyPath::root().key(name)),
                missing: None,
                message: format!(
                    "expected an array of tables (`[[{name}]]`), found {}",
                    other.type_str()
                ),
            });
            None
        }
    }
}

/// One `[[channel]]`: find `type` (and `provider`), then read the matching shape
/// from the rest of the table.
fn read_channel(value: Spanned<DeValue<'_>>, found: &mut Vec<Found>) -> Option<RawChannel> {
    let span = value.span();
    let DeValue::Table(mut table) = value.into_inner() else {
        found.push(Found {
            span,
            path: None,
            missing: None,
            message: "a channel must be a table".to_owned(),
        });
        return None;
    };
    let kind = take_tag(&mut table, "type", &span, CHANNEL_TYPES, found)?;
    let provider = if kind.get_ref() == "sms" {
        Some(take_tag(
            &mut table,
            "provider",
            &span,
            SMS_PROVIDERS,
            found,
        )?)
    } else {
        None
    };
    let rest = Spanned::new(span.clone(), DeValue::Table(table));
    match (
        kind.get_ref().as_str(),
        provider.as_ref().map(|p| p.get_ref().as_str()),
    ) {
        ("webhook", _) => typed(rest, found).map(RawChannel::Webhook),
        ("mail", _) => typed(rest, found).map(RawChannel::Mail),
        ("sms", Some("twilio")) => typed(rest, found).map(RawChannel::Twilio),
        ("sms", Some("http")) => typed(rest, found).map(RawChannel::HttpSms),
        ("alertmanager", _) => typed(rest, found).map(RawChannel::Alertmanager),
        ("pagerduty", _) => typed(rest, found).map(RawChannel::Pagerduty),
        ("sms", Some(other)) => {
            found.push(unknown_tag(
                "provider",
                other,
                provider_span(&provider),
                SMS_PROVIDERS,
            ));
            None
        }
        (other, _) => {
            found.push(unknown_tag("type", other, kind.span(), CHANNEL_TYPES));
            None
        }
    }
}

fn provider_span(provider: &Option<Spanned<String>>) -> Range<usize> {
    provider.as_ref().map(Spanned::span).unwrap_or(0..0)
}

fn unknown_tag(key: &str, value: &str, span: Range<usize>, expected: &str) -> Found {
    Found {
        span,
        path: None,
        missing: None,
        message: format!("unknown channel {key} {value:?}; expected one of {expected}"),
    }
}

/// Removes the string `key` from a channel table, reporting it missing or mistyped.
fn take_tag(
    table: &mut DeTable<'_>,
    key: &str,
    table_span: &Range<usize>,
    expected: &str,
    found: &mut Vec<Found>,
) -> Option<Spanned<String>> {
    let Some(value) = table.remove(key) else {
        found.push(Found {
            span: table_span.clone(),
            path: None,
            missing: Some(key.to_owned()),
            message: format!("missing required key `{key}` (one of {expected})"),
        });
        return None;
    };
    let span = value.span();
    match value.into_inner() {
        DeValue::String(s) => Some(Spanned::new(span, s.into_owned())),
        other => {
            found.push(Found {
                span,
                path: None,
                missing: None,
                message: format!(
                    "`{key}` must be a string, one of {expected}; found {}",
                    other.type_str()
                ),
            });
            None
        }
    }
}
