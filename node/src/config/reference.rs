//! The config format in words: every section of the TOML file and each of its
//! keys with its type, default and limits, plus the page's prose and examples.
//! splitguard.toml(5) is rendered from this (`splitguard manpages`), and
//! `node/tests/config_reference.rs` holds it against the schema: each
//! section's keys must be exactly the ones the loader expects there, so the
//! page cannot drift from `schema.rs`.
//!
//! Text here may mark code with backticks; the renderer sets it in bold.

/// One table of the file (or the top level), as the page documents it.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    /// How the page heads it, as the file spells it: `[arbiter]`,
    /// `[[channel]] type = "sms", provider = "twilio"`.
    pub heading: &'static str,
    /// The table's path from the top: `[]` for the top level, `["reply", "imap"]`.
    pub path: &'static [&'static str],
    /// An array of tables (`[[instance]]`) rather than one table.
    pub array: bool,
    /// The keys that pick this shape of the table (`type = "sms"`), as TOML
    /// values. For a top-level table they are its own keys (and documented in
    /// `keys`); for a nested table they are its parent's.
    pub selector: &'static [(&'static str, &'static str)],
    /// What the section is for, one paragraph.
    pub about: &'static str,
    pub keys: &'static [Key],
    /// Some for a table whose keys are the user's own (a sender's PIN, a fence
    /// agent's options): what its keys and values are, in place of `keys`.
    pub free_keys: Option<&'static str>,
}

/// One key of a section.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    /// Its type in words: "duration", "array of IP addresses", ….
    pub kind: &'static str,
    pub default: KeyDefault,
    /// A password, token or key: the file must not be readable by others.
    pub secret: bool,
    /// What it does and its limits, a sentence or two.
    pub about: &'static str,
}

/// A key's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDefault {
    /// The file must set it.
    Required,
    /// What applies when the file leaves it out, in words or as a TOML value.
    Value(&'static str),
}

impl Key {
    const fn new(
        name: &'static str,
        kind: &'static str,
        default: KeyDefault,
        about: &'static str,
    ) -> Key {
        Key {
            name,
            kind,
            default,
            secret: false,
            about,
        }
    }

    const fn secret(self) -> Key {
        Key {
            secret: true,
            ..self
        }
    }
}

use KeyDefault::{Required, Value};

const fn req(name: &'static str, kind: &'static str, about: &'static str) -> Key {
    Key::new(name, kind, Required, about)
}

const fn opt(
    name: &'static str,
    kind: &'static str,
    default: &'static str,
    about: &'static str,
) -> Key {
    Key::new(name, kind, Value(default), about)
}

/// The page's one-line summary (NAME).
pub const SUMMARY: &str = "configuration file of splitguard, the split-brain guard for VRRP pairs";

/// Where the files live (FILES), with what each is.
pub const FILES: &[(&str, &str)] = &[
    (
        "/etc/splitguard/splitguard.toml",
        "The daemon's file: `splitguard run -c /etc/splitguard/splitguard.toml`.",
    ),
    (
        "/etc/splitguard/watch.toml",
        "The standalone watchdog's file, beside keepalived: `splitguard watch -c /etc/splitguard/watch.toml`.",
    ),
];

/// DESCRIPTION, one paragraph each.
pub const DESCRIPTION: &[&str] = &[
    "splitguard reads one TOML file, named with `-c FILE`: `splitguard run` (the VRRP daemon with its arbiter and watchdog) and `splitguard watch` (the watchdog alone, beside keepalived) take the same format. By convention the daemon's file is /etc/splitguard/splitguard.toml and the standalone watchdog's /etc/splitguard/watch.toml. A file for `run` has `[[instance]]` tables; a file for `watch` has `[[watch]]` tables instead.",
    "Every key is checked: an unknown key, a value of the wrong type or out of range, or keys that contradict each other stop `run`, `watch` and `check-config` with one line per problem, `FILE:LINE:COL: key: message`. An unknown key's message lists the keys its table takes. `splitguard check-config -c FILE` validates a file without starting anything: exit 0 when it is valid, 2 otherwise.",
    "Durations are strings of a number and a unit: `\"500ms\"`, `\"2s\"`, `\"5m\"`, `\"1h\"`, also `\"1.5s\"` and sums such as `\"1m30s\"` (units ns, us, ms, s, m, h, d); `\"0\"` needs no unit. Commands (`command`, `notify`, `reboot_command`, …) are arrays of strings, the program and its arguments, run without a shell. Addresses are IPv4 or IPv6; VIPs carry a prefix length (`\"10.0.0.3/24\"`).",
    "Secrets (the keys marked secret below: passwords, tokens, PINs, shared keys) are written in the file itself; there is no `*_file` form that reads them from elsewhere. A file that holds a secret must therefore not be readable by others: install it root:splitguard mode 0640 (or 0600 owned by the service user). Otherwise `run`, `watch` and `check-config` refuse it and say how to fix it, unless `secret_file_mode = \"warn\"`. URLs with a password or a query string, and the SMS gateway's templates, count as secrets too, as does a TLS private key file (`metrics_tls_key`, `reply.tls_key`, `witness.tls_key`). Secrets never appear in logs, errors or `status`.",
];

/// A minimal file for `splitguard run` (EXAMPLES); the tests load it.
pub const EXAMPLE_RUN: &str = r#"# /etc/splitguard/splitguard.toml on lb01
node = "lb01"

[[instance]]
name = "VI_1"
interface = "eth0"
vrid = 51
priority = 150
advert_interval = "1s"
auth_pass = "1111"
vips = ["10.0.0.3/24"]
vip_label = "eth0:1"

[arbiter]
references = ["10.0.0.254"]

[[channel]]
type = "webhook"
url = "http://alerts.example/hook"
"#;

/// A minimal file for `splitguard watch` beside keepalived (EXAMPLES).
pub const EXAMPLE_WATCH: &str = r#"# /etc/splitguard/watch.toml on lb02, beside keepalived
node = "lb02"

[[watch]]
vip = "10.0.0.3"
interface = "eth0"
role = "backup"

[[channel]]
type = "mail"
host = "smtp.example"
from = "splitguard@example.com"
to = ["oncall@example.com"]

[watch_actions]
demote_command = ["systemctl", "stop", "keepalived"]
resume_command = ["systemctl", "start", "keepalived"]
"#;

/// SEE ALSO: (page, section).
pub const SEE_ALSO: &[(&str, &str)] = &[
    ("splitguard", "1"),
    ("splitguard-run", "1"),
    ("splitguard-watch", "1"),
    ("splitguard-check-config", "1"),
    ("keepalived.conf", "5"),
];

const NAME: Key = opt(
    "name",
    "string",
    "`<type><index>`, e.g. `webhook0`",
    "The channel's name in logs, `status` and the spool, which keys deliveries by it; unique among channels.",
);
const TIER: Key = opt(
    "tier",
    "integer 0-255",
    "0",
    "Escalation tier: 0 is paged first; tier N joins after N escalation steps of `[alerts] escalate_after` while the incident stays unacked.",
);
const TIMEOUT: Key = opt(
    "timeout",
    "duration",
    "\"10s\"",
    "The longest one send may take; more than 0. A failed send is retried with backoff from the spool.",
);
const SMS_TO: Key = req(
    "to",
    "array of strings",
    "The recipients' numbers in E.164 form (`\"+15550002222\"`); at least one.",
);

const CHANNEL_TYPE: Key = req(
    "type",
    "string",
    "Picks the channel: `\"webhook\"`, `\"mail\"`, `\"sms\"`, `\"alertmanager\"` or `\"pagerduty\"`; this table's keys are the ones for its type.",
);

const SMS_PROVIDER: Key = req(
    "provider",
    "string",
    "Picks the SMS gateway: `\"twilio\"` (Twilio's REST API) or `\"http\"` (any gateway reached by a templated HTTP request).",
);

/// Every section of the file, in the page's order.
pub const SECTIONS: &[Section] = &[
    Section {
        heading: "Top level",
        path: &[],
        array: false,
        selector: &[],
        about: "Keys before the first table: this node and where its files are.",
        keys: &[
            req(
                "node",
                "string",
                "This node's name in alerts, `status` and the witness's keys; not empty.",
            ),
            opt(
                "state_dir",
                "path",
                "\"/var/lib/splitguard\"",
                "Where the alert spool, incident codes, the reboot ledger and the audit files live; absolute.",
            ),
            opt(
                "control_socket",
                "path",
                "\"/run/splitguard.sock\"",
                "The daemon's control socket (mode 0660), which `status` and `check` ask; absolute.",
            ),
            opt(
                "control_socket_group",
                "string",
                "unset (the daemon's group)",
                "The group owning the control socket, so a monitoring user can ask it without root.",
            ),
            opt(
                "events_file",
                "path",
                "unset",
                "A JSON-lines file of ordered events (state changes, VIPs added and removed, withheld claims) for tools to tail; absolute.",
            ),
            opt(
                "metrics_listen",
                "address:port",
                "unset (no listener)",
                "Where Prometheus scrapes `/metrics`, e.g. `\"127.0.0.1:9745\"`.",
            ),
            opt(
                "metrics_tls_cert",
                "path",
                "unset (plain HTTP)",
                "Serve `/metrics` over TLS with this PEM certificate chain; needs `metrics_tls_key` and `metrics_listen`.",
            ),
            opt(
                "metrics_tls_key",
                "path",
                "unset",
                "The PEM private key for `metrics_tls_cert`. The key file itself must not be readable by others, like a file holding secrets.",
            ),
            opt(
                "secret_file_mode",
                "string",
                "\"refuse\"",
                "What a file holding secrets that others may read does: `\"refuse\"` stops `run`, `watch` and `check-config`; `\"warn\"` logs it and goes on. Group-readable is fine either way.",
            ),
        ],
        free_keys: None,
    },
    Section {
        heading: "[[instance]]",
        path: &["instance"],
        array: true,
        selector: &[],
        about: "One VRRP instance (keepalived's vrrp_instance): a virtual router that holds its VIPs on one node of the pair at a time. `splitguard run` runs every instance of the file.",
        keys: &[
            req(
                "name",
                "string",
                "The instance's name in logs, `status` and notify arguments; unique, not empty.",
            ),
            req(
                "interface",
                "string",
                "The interface VRRP runs on and the VIPs are added to (at most 15 bytes).",
            ),
            req(
                "vrid",
                "integer 1-255",
                "The virtual router ID; unique per interface and address family, and the same on both nodes.",
            ),
            req(
                "priority",
                "integer 1-255",
                "The election priority: the highest live priority holds the VIPs (255: the address owner). Track scripts and the arbiter's demotion move it.",
            ),
            req(
                "advert_interval",
                "duration",
                "How often the master advertises. VRRPv2: whole seconds, 1s to 255s; VRRPv3: a multiple of 10ms, 10ms to 40.95s.",
            ),
            opt(
                "version",
                "integer",
                "2",
                "The VRRP version, 2 (RFC 3768, IPv4 only) or 3 (RFC 5798, IPv4 and IPv6).",
            ),
            opt(
                "preempt",
                "boolean",
                "true",
                "A backup with a higher priority takes the VIPs from a lower-priority master.",
            ),
            opt(
                "preempt_delay",
                "duration",
                "\"0s\"",
                "How long after start a lower-priority master is tolerated before preempting it (keepalived's preempt_delay, at most 1000s).",
            ),
            opt(
                "auth_pass",
                "string",
                "unset (no authentication)",
                "VRRPv2 simple-text password, 1 to 8 bytes, as keepalived's auth_pass; not allowed with version 3.",
            )
            .secret(),
            req(
                "vips",
                "array of strings",
                "The virtual addresses in CIDR form (`\"10.0.0.3/24\"`); at least one, all of one address family (IPv6 needs version 3), each in one instance only.",
            ),
            opt(
                "vip_label",
                "string",
                "unset",
                "The iproute2 label the VIPs get, the interface's name, a colon and a suffix (`\"eth0:1\"`), at most 15 bytes.",
            ),
            opt(
                "unicast_peers",
                "array of IP addresses",
                "[] (multicast)",
                "Send adverts to these peers instead of the multicast group (224.0.0.18, ff02::12), and accept adverts only from them; the VIPs' family, never this node or a VIP.",
            ),
            opt(
                "unicast_src_ip",
                "IP address",
                "the interface's primary address (IPv6: its link-local one)",
                "The address adverts are sent from; it breaks priority ties.",
            ),
            opt(
                "track_scripts",
                "array of strings",
                "[]",
                "Names of `[[track_script]]` tables whose results move this instance's priority or put it in FAULT; each once.",
            ),
            opt(
                "track_interfaces",
                "array of strings",
                "[]",
                "Interfaces whose link going down puts the instance in FAULT (its own interface always does).",
            ),
            opt(
                "notify",
                "command",
                "unset",
                "Run on every state change with keepalived's arguments `INSTANCE name STATE priority`; notify commands run in order, one at a time per instance.",
            ),
            opt(
                "notify_master",
                "command",
                "unset",
                "Run on becoming MASTER.",
            ),
            opt(
                "notify_backup",
                "command",
                "unset",
                "Run on becoming BACKUP.",
            ),
            opt(
                "notify_fault",
                "command",
                "unset",
                "Run on entering FAULT.",
            ),
            opt(
                "notify_stop",
                "command",
                "unset",
                "Run when the daemon stops the instance.",
            ),
            opt(
                "v3_checksum_as_v2",
                "boolean",
                "false",
                "VRRPv3 over IPv4 only: compute the checksum without the pseudo-header, as some older peers do (RFC 9568 notes the ambiguity).",
            ),
            opt(
                "garp_repeat",
                "integer 0-100",
                "5",
                "Gratuitous ARPs (IPv6: unsolicited neighbour advertisements) sent per VIP on becoming master.",
            ),
            opt(
                "garp_interval",
                "duration",
                "\"100ms\"",
                "The spacing of that burst, at most 10s.",
            ),
            opt(
                "garp_refresh",
                "duration",
                "\"60s\"",
                "While master, one gratuitous ARP per VIP this often, so switches forget a stale MAC; `\"0s\"` turns it off, otherwise at least 1s.",
            ),
        ],
        free_keys: None,
    },
    Section {
        heading: "[[track_script]]",
        path: &["track_script"],
        array: true,
        selector: &[],
        about: "A health check an instance may track (`track_scripts`): a command run periodically, up while it exits 0.",
        keys: &[
            req(
                "name",
                "string",
                "The name instances track it by; unique, not empty.",
            ),
            req(
                "command",
                "command",
                "The program and its arguments, run without a shell; not empty.",
            ),
            req(
                "interval",
                "duration",
                "How often it runs; more than 0.",
            ),
            opt(
                "timeout",
                "duration",
                "`interval`",
                "A run that takes longer is killed and counts as a failure; at most `interval`.",
            ),
            opt(
                "rise",
                "integer",
                "1",
                "Successes in a row before the script counts as up; at least 1.",
            ),
            opt(
                "fall",
                "integer",
                "1",
                "Failures in a row before the script counts as down; at least 1.",
            ),
            opt(
                "weight",
                "integer -253 to 253",
                "0",
                "0: the instance goes to FAULT while the script is down. Positive: added to the priority while up. Negative: taken from it while down (as keepalived does).",
            ),
        ],
        free_keys: None,
    },
    Section {
        heading: "[arbiter]",
        path: &["arbiter"],
        array: false,
        selector: &[],
        about: "What the network says before this node may hold a VIP: reference and peer reachability, ARP/NDP ownership of the VIPs, early takeover, and what an isolated node does. On by default with the values below; the section may be left out.",
        keys: &[
            opt(
                "enabled",
                "boolean",
                "true",
                "`false` turns the arbiter off: claims follow VRRP alone, as with keepalived. `[witness]` needs it on.",
            ),
            opt(
                "references",
                "array of IP addresses",
                "[] (the interface's default gateway)",
                "Addresses pinged to tell whether this node is isolated, from the node's own address (never a VIP); each once.",
            ),
            opt(
                "peers",
                "array of IP addresses",
                "every instance's `unicast_peers`",
                "The peer nodes' own addresses, pinged to tell a dead peer from a broken heartbeat path.",
            ),
            opt(
                "quorum",
                "integer",
                "1",
                "How many references must answer for this node not to be isolated; at least 1, at most the number of `references` (1 without them).",
            ),
            opt(
                "ownership_probe",
                "boolean",
                "true",
                "While the master's adverts are overdue, ask (ARP, neighbour solicitation) who answers for the VIPs; an answer from another MAC withholds the claim.",
            ),
            opt(
                "on_isolated",
                "string",
                "\"demote\"",
                "What an isolated master does: `\"demote\"` (lose `demote_weight` while a peer answers, else release the VIPs), `\"reboot\"` (as demote, then reboot after `reboot_after`) or `\"none\"` (report only). An isolated backup never claims.",
            ),
            opt(
                "demote_weight",
                "integer 1-254",
                "50",
                "Priority taken off an isolated master while a peer still answers, so the better-connected node wins the election.",
            ),
            opt(
                "reboot_after",
                "duration",
                "unset; required with on_isolated = \"reboot\"",
                "How long a node stays isolated with no peer in reach before it reboots; more than 0.",
            ),
            opt(
                "reboot_command",
                "command",
                "[\"systemctl\", \"reboot\"]",
                "The reboot, run without a shell.",
            ),
            opt(
                "reboot_limit",
                "integer",
                "1",
                "At most this many reboots per `reboot_window` (the ledger in `state_dir`); at least 1.",
            ),
            opt(
                "reboot_window",
                "duration",
                "\"1h\"",
                "The ledger's window; more than 0.",
            ),
            opt(
                "reboot_min_uptime",
                "duration",
                "\"10m\"",
                "No reboot while the machine has been up less than this, so a broken network cannot cause a reboot loop.",
            ),
            opt(
                "probe_interval",
                "duration",
                "\"1s\"",
                "How often each reference and peer is pinged; more than 0.",
            ),
            opt(
                "probe_timeout",
                "duration",
                "\"1s\", or `probe_interval` if shorter",
                "How long an echo may take; at most `probe_interval`.",
            ),
            opt(
                "probe_rise",
                "integer",
                "2",
                "Answers in a row before a reference or peer counts as reachable; at least 1.",
            ),
            opt(
                "probe_fall",
                "integer",
                "3",
                "Misses in a row before it counts as unreachable; at least 1.",
            ),
            opt(
                "watchdog_device",
                "path",
                "unset",
                "A hardware watchdog (e.g. `\"/dev/watchdog\"`) fed until a reboot has started, to back a reboot that hangs; absolute.",
            ),
            opt(
                "early_takeover",
                "boolean",
                "true",
                "Claim before Master_Down_Interval once the silent master is confirmed dead (its liveness stream lost, nobody answering for the VIPs); `false`: RFC timing only.",
            ),
            opt(
                "liveness_interval",
                "duration",
                "\"100ms\"",
                "Early takeover's echo interval to each peer, 10ms to 1s (a quarter of a faster master's advert interval is used instead).",
            ),
            opt(
                "liveness_misses",
                "integer 2-20",
                "3",
                "Echoes in a row unanswered that lose a peer.",
            ),
        ],
        free_keys: None,
    },
    Section {
        heading: "[[channel]] type = \"webhook\"",
        path: &["channel"],
        array: true,
        selector: &[("type", "\"webhook\"")],
        about: "Where alerts go; any number of channels, of any types. A webhook POSTs each notification as JSON (the incident's id, status, kind, severity, node, instance, vip, owners, cause, code, time).",
        keys: &[
            CHANNEL_TYPE,
            NAME,
            TIER,
            req(
                "url",
                "URL",
                "The http(s) URL posted to. A password or a query string in it is treated as a secret.",
            ),
            opt(
                "hmac_secret",
                "string",
                "unset (unsigned)",
                "Sign each body with HMAC-SHA256 in the X-Splitguard-Signature header; not empty.",
            )
            .secret(),
            TIMEOUT,
        ],
        free_keys: None,
    },
    Section {
        heading: "[[channel]] type = \"mail\"",
        path: &["channel"],
        array: true,
        selector: &[("type", "\"mail\"")],
        about: "Mail over SMTP.",
        keys: &[
            CHANNEL_TYPE,
            NAME,
            TIER,
            req("host", "string", "The SMTP server."),
            opt(
                "port",
                "integer 1-65535",
                "465 with tls = \"implicit\", 587 with \"starttls\", 25 with \"none\"",
                "The SMTP port.",
            ),
            opt(
                "tls",
                "string",
                "\"starttls\"",
                "`\"implicit\"` (TLS from the first byte), `\"starttls\"`, or `\"none\"` (only for a relay on localhost).",
            ),
            opt(
                "username",
                "string",
                "unset (no login)",
                "The SMTP login; with `password`, or neither.",
            ),
            opt(
                "password",
                "string",
                "unset",
                "The SMTP password; with `username`; not empty.",
            )
            .secret(),
            req("from", "string", "The sender's mail address."),
            req(
                "to",
                "array of strings",
                "The recipients' mail addresses; at least one.",
            ),
            TIMEOUT,
        ],
        free_keys: None,
    },
    Section {
        heading: "[[channel]] type = \"sms\", provider = \"twilio\"",
        path: &["channel"],
        array: true,
        selector: &[("type", "\"sms\""), ("provider", "\"twilio\"")],
        about: "SMS through Twilio's Messages REST API. Replies come back through `[reply]`.",
        keys: &[
            CHANNEL_TYPE,
            SMS_PROVIDER,
            NAME,
            TIER,
            opt(
                "api_url",
                "URL",
                "\"https://api.twilio.com\"",
                "Twilio's API, overridable for tests and proxies.",
            ),
            req("account_sid", "string", "The Twilio account SID; not empty."),
            req("auth_token", "string", "The Twilio auth token; not empty.").secret(),
            req(
                "from",
                "string",
                "The sending number or sender ID, as the Twilio account allows.",
            ),
            SMS_TO,
            TIMEOUT,
        ],
        free_keys: None,
    },
    Section {
        heading: "[[channel]] type = \"sms\", provider = \"http\"",
        path: &["channel"],
        array: true,
        selector: &[("type", "\"sms\""), ("provider", "\"http\"")],
        about: "SMS through any gateway reached by one HTTP request per recipient: `{to}` and `{text}` are filled in, URL-encoded.",
        keys: &[
            CHANNEL_TYPE,
            SMS_PROVIDER,
            NAME,
            TIER,
            req(
                "url_template",
                "string",
                "The request's URL with `{to}` and `{text}` (each here or in `body_template`); it must make an http(s) URL. Treated as a secret when it has a query string or a login.",
            )
            .secret(),
            opt(
                "method",
                "string",
                "\"GET\"",
                "`\"GET\"` or `\"POST\"`.",
            ),
            opt(
                "body_template",
                "string",
                "unset (no body)",
                "The POST body with `{to}` and `{text}`; needs method = \"POST\".",
            )
            .secret(),
            SMS_TO,
            TIMEOUT,
        ],
        free_keys: None,
    },
    Section {
        heading: "[[channel]] type = \"alertmanager\"",
        path: &["channel"],
        array: true,
        selector: &[("type", "\"alertmanager\"")],
        about: "Prometheus Alertmanager's v2 API: each notification is posted to `{url}/api/v2/alerts` of every instance. Give exactly one of `url` and `urls`. For a cluster, list every member in `urls`, not a load balancer in front of them: Alertmanager's documentation asks clients to send each alert to every instance, and the cluster deduplicates what it notifies.",
        keys: &[
            CHANNEL_TYPE,
            NAME,
            TIER,
            opt(
                "url",
                "URL",
                "unset (then `urls`)",
                "One Alertmanager's base URL, e.g. `\"http://am1:9093\"`. A password or a query string in it is treated as a secret.",
            ),
            opt(
                "urls",
                "array of URLs",
                "unset (then `url`)",
                "Every instance of an Alertmanager cluster, e.g. `[\"http://am1:9093\", \"http://am2:9093\", \"http://am3:9093\"]`: not empty, http or https, each instance once. A notification counts as delivered when any instance took it; an instance that failed is sent its copy again on the channel's backoff. A password or a query string in any of them is treated as a secret.",
            ),
            TIMEOUT,
            opt(
                "instance_retry_for",
                "duration",
                "\"5m\"",
                "How long an instance that missed a delivered notification is sent its copy again before it is given up; greater than zero. A newer notification of the same incident replaces an owed copy.",
            ),
        ],
        free_keys: None,
    },
    Section {
        heading: "[[channel]] type = \"pagerduty\"",
        path: &["channel"],
        array: true,
        selector: &[("type", "\"pagerduty\"")],
        about: "PagerDuty's Events API v2.",
        keys: &[
            CHANNEL_TYPE,
            NAME,
            TIER,
            req(
                "routing_key",
                "string",
                "The service's integration (routing) key; not empty.",
            )
            .secret(),
            opt(
                "url",
                "URL",
                "\"https://events.pagerduty.com/v2/enqueue\"",
                "The events endpoint, overridable for tests and proxies.",
            ),
            TIMEOUT,
        ],
        free_keys: None,
    },
    Section {
        heading: "[reply]",
        path: &["reply"],
        array: false,
        selector: &[],
        about: "Ack-by-reply: where the on-call's answers to a page come in (an HTTP listener for SMS webhooks, an IMAP mailbox for mail) and who may send them. Every page carries a code; `4821` acks, `4821 DEMOTE` releases the VIP here, also `RESUME`, `MUTE 30m`, `STATUS`, `FENCE`. Without this section replies are not read; with it, `listen` with a verifier (`twilio_auth_token`, `generic_secret`) or `[reply.imap]` must receive them.",
        keys: &[
            opt(
                "listen",
                "address:port",
                "unset (no HTTP listener)",
                "The HTTP listener for replies (`POST /reply/twilio`, `POST /reply/generic`), e.g. `\"0.0.0.0:8725\"`; needed with `twilio_auth_token` or `generic_secret`, and only with one of them.",
            ),
            opt(
                "public_url",
                "URL",
                "unset; required with twilio_auth_token",
                "The exact URL Twilio posts replies to, which it signs.",
            ),
            opt(
                "twilio_auth_token",
                "string",
                "unset",
                "Verifies Twilio's X-Twilio-Signature on `/reply/twilio`; not empty.",
            )
            .secret(),
            opt(
                "generic_secret",
                "string",
                "unset",
                "The shared secret of a generic SMS gateway: `/reply/generic` takes an HMAC-SHA256 over `<timestamp>.<body>` within 5 minutes; not empty.",
            )
            .secret(),
            req(
                "allowed_senders",
                "array of strings",
                "E.164 numbers and mail addresses whose replies count; at least one. Replies from anyone else are refused and logged.",
            ),
            opt(
                "tls_cert",
                "path",
                "unset (plain HTTP)",
                "Serve `listen` over TLS with this PEM certificate chain; needs `tls_key`.",
            ),
            opt(
                "tls_key",
                "path",
                "unset",
                "The PEM private key for `tls_cert`; the key file must not be readable by others.",
            ),
        ],
        free_keys: None,
    },
    Section {
        heading: "[reply.pins]",
        path: &["reply", "pins"],
        array: false,
        selector: &[],
        about: "Per sender, the PIN its DEMOTE, RESUME, MUTE and STATUS replies must carry (`4821 DEMOTE 7741`); FENCE always needs one. Also written inline: `pins = { \"+15550002222\" = \"7741\" }`.",
        keys: &[],
        free_keys: Some(
            "Each key is a sender as written in `allowed_senders` (quoted: `\"+15550002222\"`); each value is that sender's PIN, a string and a secret. Default: no PINs.",
        ),
    },
    Section {
        heading: "[reply.imap]",
        path: &["reply", "imap"],
        array: false,
        selector: &[],
        about: "The reply mailbox, read over IMAP (with IDLE where offered): a reply counts by `[SG-<code>]` in its subject or by In-Reply-To pointing at the alert.",
        keys: &[
            req("host", "string", "The IMAP server; not empty."),
            opt(
                "port",
                "integer 1-65535",
                "993 with tls = \"implicit\", else 143",
                "The IMAP port.",
            ),
            opt(
                "tls",
                "string",
                "\"implicit\"",
                "`\"implicit\"`, `\"starttls\"` or `\"none\"`.",
            ),
            req("username", "string", "The mailbox login; not empty."),
            req("password", "string", "The mailbox password; not empty.").secret(),
            opt(
                "mailbox",
                "string",
                "\"INBOX\"",
                "The folder replies arrive in.",
            ),
            opt(
                "poll_interval",
                "duration",
                "\"30s\"",
                "How often the mailbox is read when the server offers no IDLE; more than 0.",
            ),
        ],
        free_keys: None,
    },
    Section {
        heading: "[[watch]]",
        path: &["watch"],
        array: true,
        selector: &[],
        about: "One VIP the standalone watchdog (`splitguard watch`, beside keepalived) keeps an eye on; `splitguard watch` refuses a file without one.",
        keys: &[
            req(
                "vip",
                "IP address",
                "The VIP, without a prefix length; each once.",
            ),
            req(
                "interface",
                "string",
                "The interface the VIP lives on.",
            ),
            req(
                "role",
                "string",
                "The role this node should have for the VIP, `\"master\"` or `\"backup\"`: the VIP appearing on a backup is a failover, or a split brain when another MAC still answers for it.",
            ),
        ],
        free_keys: None,
    },
    Section {
        heading: "[watch_actions]",
        path: &["watch_actions"],
        array: false,
        selector: &[],
        about: "What DEMOTE and RESUME replies make the standalone watchdog do beside keepalived; without them those replies are refused. Under `splitguard run` the daemon demotes itself and these are not used.",
        keys: &[
            opt(
                "demote_command",
                "command",
                "unset",
                "Run on DEMOTE, e.g. `[\"systemctl\", \"stop\", \"keepalived\"]`.",
            ),
            opt(
                "resume_command",
                "command",
                "unset",
                "Run on RESUME, e.g. `[\"systemctl\", \"start\", \"keepalived\"]`.",
            ),
        ],
        free_keys: None,
    },
    Section {
        heading: "[alerts]",
        path: &["alerts"],
        array: false,
        selector: &[],
        about: "The alert engine: grouping, repeats, escalation and rate limits, as Alertmanager does them.",
        keys: &[
            opt(
                "group_wait",
                "duration",
                "\"10s\"",
                "Wait before the first page, so a flap that clears at once pages nobody.",
            ),
            opt(
                "group_wait_critical",
                "duration",
                "\"0s\"",
                "The same for critical incidents (split brain); 0 pages at once.",
            ),
            opt(
                "repeat_interval",
                "duration",
                "\"30m\"",
                "Resend an unacked incident this often; more than 0.",
            ),
            opt(
                "escalate_after",
                "duration",
                "\"15m\"",
                "Page the next channel tier when an incident stays unacked this long; more than 0.",
            ),
            opt(
                "rate_limit",
                "integer",
                "30",
                "At most this many sends per channel per `rate_limit_window`; at least 1.",
            ),
            opt(
                "rate_limit_window",
                "duration",
                "\"1h\"",
                "The rate limit's window; more than 0.",
            ),
            opt(
                "send_resolved",
                "boolean",
                "true",
                "Also notify when an incident clears.",
            ),
        ],
        free_keys: None,
    },
    Section {
        heading: "[witness]",
        path: &["witness"],
        array: false,
        selector: &[],
        about: "An etcd v3 cluster as the tie-breaker: the master of a VRID holds a key for it under a lease, and a backup that stops hearing its master claims only once it holds the key. Needs at least one `[[instance]]` and the arbiter on.",
        keys: &[
            req(
                "etcd",
                "array of strings",
                "The endpoints, `\"http://host:port\"` or `\"https://host:port\"`, 1 to 7, each once, all http or all https.",
            ),
            req(
                "cluster",
                "string",
                "The key namespace (keys live under `/<cluster>/vrid/`), 1 to 64 of letters, digits, `.`, `_` and `-`; the same on both nodes.",
            ),
            opt(
                "lease_ttl",
                "duration",
                "\"3s\"",
                "The lease's time to live, whole seconds from 2s to 60s; renewed every third of it.",
            ),
            opt(
                "tls_ca",
                "path",
                "unset (the system's roots)",
                "The CA that signs the endpoints' certificates (https endpoints); absolute.",
            ),
            opt(
                "tls_cert",
                "path",
                "unset",
                "A client certificate chain for etcd's certificate auth; with `tls_key`.",
            ),
            opt(
                "tls_key",
                "path",
                "unset",
                "Its private key; the key file must not be readable by others.",
            ),
            opt(
                "username",
                "string",
                "unset",
                "etcd's user; with `password`, or neither.",
            ),
            opt(
                "password",
                "string",
                "unset",
                "etcd's password; with `username`; not empty.",
            )
            .secret(),
            opt(
                "confirm_listen",
                "address:port",
                "unset (no confirm path)",
                "Where this daemon takes its peer's confirmations, best on a management network, e.g. `\"192.0.2.197:8727\"`. With `confirm_peer` and `confirm_secret` (all three or none) a master that cannot reach etcd keeps its VIPs while the peer confirms; without them it releases them.",
            ),
            opt(
                "confirm_peer",
                "address:port",
                "unset",
                "The other daemon's `confirm_listen`; same address family, not this node's own.",
            ),
            opt(
                "confirm_secret",
                "string",
                "unset",
                "Shared by both daemons to authenticate the confirm path; at least 16 bytes.",
            )
            .secret(),
            opt(
                "confirm_interval",
                "duration",
                "\"500ms\"",
                "How often confirmations are sent, 100ms to 1s, and at most (`lease_ttl` - 1s) / 2.",
            ),
        ],
        free_keys: None,
    },
    Section {
        heading: "[[fence]]",
        path: &["fence"],
        array: true,
        selector: &[],
        about: "A peer this node may power off (STONITH) when a split brain is confirmed and persists, one table per peer. Only the node first in VRRP's order fences, never an isolated one, and `off` is confirmed by `status` before claiming.",
        keys: &[
            req(
                "peer",
                "IP address",
                "The peer's own address, as its adverts and `unicast_peers` name it; not a VIP, one table per peer.",
            ),
            opt(
                "name",
                "string",
                "unset",
                "The peer's node name, by which a FENCE reply may name it (its address always works); one word.",
            ),
            req(
                "agent",
                "string",
                "A fence agent speaking the fence-agents stdin protocol, by name (`\"fence_ipmilan\"`, `\"fence_redfish\"`, …, found in /usr/sbin, /sbin or the PATH) or absolute path, or `\"redfish\"` for the built-in Redfish client.",
            ),
            opt(
                "fence_after",
                "duration",
                "\"5s\"",
                "How long a split brain (or a dead peer daemon whose VIP still answers) must hold before fencing, 1s to 600s.",
            ),
            opt(
                "timeout",
                "duration",
                "\"30s\"",
                "The longest one agent call may take, 1s to 600s; the agent is killed then.",
            ),
            opt(
                "fence_limit",
                "integer 1-100",
                "1",
                "At most this many fences per `fence_window`.",
            ),
            opt(
                "fence_window",
                "duration",
                "\"1h\"",
                "The fence ledger's window; more than 0.",
            ),
            opt(
                "fence_min_uptime",
                "duration",
                "\"5m\"",
                "No fence this soon after the daemon started.",
            ),
            opt(
                "peer_priority",
                "integer 1-255",
                "unset (as its adverts show)",
                "The peer's VRRP priority, for when its adverts may never be heard here; both nodes must agree which of them fences first.",
            ),
            opt(
                "peer_mac",
                "MAC address",
                "unset (learned by ARP)",
                "The peer's own MAC (as `52:54:00:12:34:56`). Answers for the peer's address from any other MAC (an address conflict, proxy ARP, a spoofer) are then ignored, so they cannot get the peer fenced for a VIP another host holds.",
            ),
            opt(
                "dry_run",
                "boolean",
                "false",
                "Log the agent call instead of making it (also `splitguard run --dry-run`).",
            ),
        ],
        free_keys: None,
    },
    Section {
        heading: "[[fence]] options, for a fence agent",
        path: &["fence", "options"],
        array: false,
        selector: &[],
        about: "The agent's options, usually inline: `options = { ip = \"10.0.9.6\", username = \"admin\", password = \"…\", lanplus = 1 }`. They go to the agent's stdin as `key=value` lines, never its arguments or environment.",
        keys: &[],
        free_keys: Some(
            "Each key is one of the agent's options (letters, digits, `_` and `-`; not `action`, which splitguard sets); each value a string, an integer or a boolean (true is 1), without a line break. Keys that look like credentials (containing passw, secret or token, or community) are secrets, masked wherever options are shown. Default: no options.",
        ),
    },
    Section {
        heading: "[[fence]] options, agent = \"redfish\"",
        path: &["fence", "options"],
        array: false,
        selector: &[("agent", "\"redfish\"")],
        about: "The built-in Redfish client's target: it posts ComputerSystem.Reset ForceOff to the BMC and polls PowerState until Off, within `timeout`.",
        keys: &[
            req(
                "url",
                "URL",
                "The BMC's base URL, `\"https://host[:port]\"`, without a login in it.",
            ),
            req("username", "string", "The BMC login; not empty."),
            req("password", "string", "The BMC password; not empty.").secret(),
            opt(
                "system",
                "string",
                "unset (the only system)",
                "The system's id under /redfish/v1/Systems/, without slashes.",
            ),
            opt(
                "tls_ca",
                "path",
                "unset (the system's roots)",
                "A CA bundle for the BMC's certificate; absolute.",
            ),
            opt(
                "ssl_insecure",
                "boolean",
                "false",
                "Accept any certificate (BMCs ship self-signed ones); not with `tls_ca`.",
            ),
        ],
        free_keys: None,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples the page shows are files the loader takes.
    #[test]
    fn the_examples_load() {
        for (name, text) in [("run", EXAMPLE_RUN), ("watch", EXAMPLE_WATCH)] {
            if let Err(e) = crate::config::parse(text, name) {
                panic!("the {name} example does not load:\n{e}");
            }
        }
    }

    #[test]
    fn headings_and_keys_are_unique() {
        let mut headings = std::collections::HashSet::new();
        for s in SECTIONS {
            assert!(headings.insert(s.heading), "{} twice", s.heading);
            let mut keys = std::collections::HashSet::new();
            for k in s.keys {
                assert!(keys.insert(k.name), "{}: {} twice", s.heading, k.name);
            }
            assert_eq!(
                s.keys.is_empty(),
                s.free_keys.is_some(),
                "{}: a section lists its keys or describes free ones",
                s.heading
            );
        }
    }
}
